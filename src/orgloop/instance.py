"""The files a running runtime leaves in its workspace data directory, and talking to it.

``orgloop.pid`` holds the pid (for ``kill $(cat …)``); ``runtime.json`` holds the pid, the path of the
owner's control socket, the read-only TCP port (if one is configured), the start time and the log file of
a daemon. Both are written atomically once the runtime is up and removed by the runtime when it stops. A
runtime counts as running when the pid is alive and its control socket answers with that same pid (so a
reused pid is never mistaken for it). Every request goes over the socket (:mod:`orgloop.control.client`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orgloop.atomicfile import atomic_write
from orgloop.plan import atomic_write_json
from orgloop.control.client import ControlError, request
from orgloop.control.paths import socket_path

__all__ = ["Instance", "PID_FILE", "INFO_FILE", "LOG_FILE", "write_instance", "read_instance", "clear_instance",
           "running_instance", "pid_alive", "wait_for_exit", "ControlError"]

PID_FILE = "orgloop.pid"
INFO_FILE = "runtime.json"
LOG_FILE = "orgloop.log"


@dataclass
class Instance:
    pid: int
    control_socket: str
    started_at: float
    control_port: int | None = None
    log_file: str | None = None

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """One request over the control socket (:func:`orgloop.control.client.request`)."""
        return request(Path(self.control_socket), method, path, body, timeout)


def write_instance(data_dir: Path, instance: Instance) -> None:
    atomic_write_json(Path(data_dir) / INFO_FILE, asdict(instance))
    atomic_write(Path(data_dir) / PID_FILE, f"{instance.pid}\n".encode())


def read_instance(data_dir: Path) -> Instance | None:
    try:
        raw = json.loads((Path(data_dir) / INFO_FILE).read_text(encoding="utf-8"))
        port = raw.get("control_port")
        return Instance(int(raw["pid"]), str(raw.get("control_socket") or socket_path(Path(data_dir))),
                        float(raw["started_at"]), None if port is None else int(port), raw.get("log_file"))
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
