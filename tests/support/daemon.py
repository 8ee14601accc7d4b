"""A real daemon (``orgloop start --daemon``) of a copy of the starter project, for the control-plane tests.

Its ORGLOOP_HOME is a fresh directory under /tmp with mode 0711 (traversable, not listable), so that a
child running as another user reaches the data directory's own permissions and nothing else stops it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

import orgloop
from orgloop.instance import pid_alive, wait_for_exit

STARTER = Path(orgloop.__file__).parent / "templates" / "starter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    project: Path
    home: Path
    port: int
    env: dict[str, str]

    def orgloop(self, *args: str, timeout: float = 60.0, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orgloop", *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=timeout)

    @property
    def data_dir(self) -> Path:
        found = sorted(self.home.glob("h/data/**/runtime.json"))
        assert len(found) == 1, found
        return found[0].parent

    @property
    def record(self) -> dict:
        return json.loads((self.data_dir / "runtime.json").read_text())


def make_project(home: Path, port: int | None) -> Path:
    project = home / "proj"
    shutil.copytree(STARTER, project)
    if port is not None:
        with open(project / "orgloop.yaml", "a", encoding="utf-8") as f:
            f.write(f"runtime:\n  control_port: {port}\n")
    return project


@contextlib.contextmanager
def started(make: Callable[[Path, int], Path] = make_project) -> Iterator[Daemon]:
    """A daemon of the project ``make(home, port)`` writes (the starter by default), stopped at the end."""
    home = Path(tempfile.mkdtemp(prefix="olctl-", dir="/tmp"))
    os.chmod(home, 0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGLOOP_") and k not in ("PROJECT_NAME",
                                                                                           "INBOX_PATH")}
    env["ORGLOOP_HOME"] = str(home / "h")
    port = free_port()
    d = Daemon(make(home, port), home, port, env)
    try:
        r = d.orgloop("start", "-p", str(d.project), "--daemon")
        assert r.returncode == 0, r.stderr
        pid = d.record["pid"]
        try:
            yield d
        finally:
            d.orgloop("stop", "-p", str(d.project), "--timeout", "20s")
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for_exit(pid, 10)
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def daemon() -> Iterator[Daemon]:
    with started() as d:
        yield d
