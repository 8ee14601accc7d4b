"""The files a running runtime leaves in its workspace data directory, and talking to it.

``orgloop.pid`` holds the pid (for ``kill $(cat …)``); ``runtime.json`` holds the pid, the control port,
the start time and the log file of a daemon. Both are written atomically once the runtime is up and
removed by the runtime when it stops. A runtime counts as running when the pid is alive and its control
endpoint on 127.0.0.1 answers with that same pid (so a reused pid is never mistaken for it).
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orgloop.plan import atomic_write_json

__all__ = ["Instance", "PID_FILE", "INFO_FILE", "LOG_FILE", "write_instance", "read_instance", "clear_instance",
           "running_instance", "pid_alive", "wait_for_exit", "ControlError", "control_request"]

PID_FILE = "orgloop.pid"
INFO_FILE = "runtime.json"
LOG_FILE = "orgloop.log"


class ControlError(RuntimeError):
    """The control endpoint did not answer, or answered with an error (``status`` is the HTTP code)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass
class Instance:
    pid: int
    control_port: int
    started_at: float
    log_file: str | None = None

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        return control_request(self.control_port, method, path, body, timeout)


def write_instance(data_dir: Path, instance: Instance) -> None:
    atomic_write_json(Path(data_dir) / INFO_FILE, asdict(instance))
    tmp = Path(data_dir) / f".{PID_FILE}.tmp"
    tmp.write_text(f"{instance.pid}\n")
    os.replace(tmp, Path(data_dir) / PID_FILE)


def read_instance(data_dir: Path) -> Instance | None:
    try:
        raw = json.loads((Path(data_dir) / INFO_FILE).read_text(encoding="utf-8"))
        return Instance(int(raw["pid"]), int(raw["control_port"]), float(raw["started_at"]), raw.get("log_file"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def clear_instance(data_dir: Path, pid: int | None = None) -> None:
    """Remove the files (only if they still describe ``pid``, when given)."""
    current = read_instance(data_dir)
    if pid is not None and current is not None and current.pid != pid:
        return
    for name in (INFO_FILE, PID_FILE):
        (Path(data_dir) / name).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running process (an exited one waiting to be reaped does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def running_instance(data_dir: Path) -> Instance | None:
    """The runtime of this data directory if one is running and answering, else None."""
    inst = read_instance(data_dir)
    if inst is None or not pid_alive(inst.pid):
        return None
    try:
        status = inst.request("GET", "/status", timeout=5.0)
    except ControlError:
        return None
    return inst if isinstance(status, dict) and status.get("pid") == inst.pid else None


def control_request(port: int, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One JSON request to the control endpoint on 127.0.0.1; raises :class:`ControlError`."""
    data = None if body is None else json.dumps(body, default=str).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        finally:
            exc.close()
        message = str(payload["error"]) if isinstance(payload, dict) and payload.get("error") else str(exc)
        raise ControlError(message, exc.code, payload) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ControlError(f"control endpoint on 127.0.0.1:{port} did not answer: {exc}") from None


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` is gone; True if it exited within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
