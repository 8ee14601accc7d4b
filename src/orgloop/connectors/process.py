"""Running a program per event, and ending all of it: the process, its group, and whatever it spawned.

A program runs in a session (and process group) of its own, with an environment variable
``ORGLOOP_RUN_TOKEN`` that is unique to this run. Its descendants inherit both, unless they change them:
a grandchild that calls ``setsid`` leaves the group but keeps the token. Ending a run therefore kills the
group *and* every process of this user whose environment carries the token (found in ``/proc``), so a
daemonising grandchild cannot outlive it or hold its output pipes open. A descendant that clears its
environment and leaves the session escapes; nothing short of a cgroup can follow it, and orgloop does not
create cgroups.

When the program itself exits, its output pipes are read for up to ``grace`` seconds more; processes still
holding them after that are killed (they would otherwise hold the caller until the timeout). A program
that starts detached work on purpose closes its stdout and stderr first; that work is left alone.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["ProgramRun", "Programs", "RunInterrupted", "run_program", "kill_tree"]

TOKEN_VAR = "ORGLOOP_RUN_TOKEN"


class RunInterrupted(Exception):
    """The run was ended from outside (``ProgramRun.kill``), for example at shutdown."""


def _processes_with_token(token: str) -> list[int]:
    needle = f"{TOKEN_VAR}={token}".encode()
    me = os.getpid()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:     # gone, or not ours
            continue
        if needle in env.split(b"\0"):
            found.append(int(name))
    return found


def kill_tree(pgid: int, token: str) -> int:
    """SIGKILL the process group ``pgid`` and every process carrying ``token``; returns how many were found
    by token (besides the group)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    pids = _processes_with_token(token)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


class ProgramRun:
    """One run of a program: ``wait()`` collects its result; ``kill()`` ends it from another thread."""

    def __init__(self, argv: list[str], stdin: bytes, *, cwd: Path | None, env: dict[str, str]) -> None:
        self.token = os.urandom(12).hex()
        self.killed = False
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=cwd, env={**env, TOKEN_VAR: self.token}, start_new_session=True)
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
                         threading.Thread(target=self._write, args=(stdin,), daemon=True)]
        for t in self._readers:
            t.start()

    @staticmethod
    def _read(pipe, chunks: list[bytes]) -> None:
        with pipe:
            for chunk in iter(lambda: pipe.read1(65536), b""):
                chunks.append(chunk)

    def _write(self, data: bytes) -> None:
        pipe = self.proc.stdin
        assert pipe is not None
        try:
            with pipe:
                pipe.write(data)
        except (BrokenPipeError, OSError):    # it exited without reading all of stdin: its business
            pass

    def kill(self) -> None:
        """End the whole run now (any thread); ``wait`` then raises :class:`RunInterrupted`."""
        self.killed = True
        kill_tree(self.proc.pid, self.token)

    def wait(self, timeout: float, grace: float = 1.0) -> tuple[int, bytes, bytes]:
        """Wait for the program; returns (exit code, stdout, stderr).

        Raises TimeoutError after ``timeout`` seconds (the whole tree is killed first) and
        :class:`RunInterrupted` when :meth:`kill` ended it. Returns within ``timeout + grace`` plus the
        time the kernel takes to deliver SIGKILL.
        """
        deadline = time.monotonic() + timeout
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid, self.token)
            self._join(grace)
            self.proc.wait()
            if self.killed:
                raise RunInterrupted() from None
            raise TimeoutError(f"did not finish within {timeout:g}s (it and everything it started were killed)") from None
        # The program is gone; whoever still holds its pipes gets `grace` seconds (within the timeout).
        if not self._join(max(0.0, min(grace, deadline - time.monotonic()))):
            kill_tree(self.proc.pid, self.token)
            self._join(grace)
        if self.killed:
            raise RunInterrupted()
        return code, b"".join(self._out), b"".join(self._err)

    def _join(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        for t in self._readers:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self._readers)


class Programs:
    """The runs one plugin has going, so that ``kill_all`` (shutdown) can end every one of them."""

    def __init__(self) -> None:
        self._runs: set[ProgramRun] = set()
        self._lock = threading.Lock()
        self.closed = False

    def run(self, argv: list[str], stdin: bytes, *, timeout: float, cwd: Path | None,
            env: dict[str, str]) -> tuple[int, bytes, bytes]:
        """Like :func:`run_program`; raises :class:`RunInterrupted` once ``kill_all`` was called."""
        if self.closed:
            raise RunInterrupted()
        run = ProgramRun(argv, stdin, cwd=cwd, env=env)
        with self._lock:
            self._runs.add(run)
        try:
            return run.wait(timeout)
        finally:
            with self._lock:
                self._runs.discard(run)

    def kill_all(self) -> None:
        """End every run in progress, and refuse new ones."""
        self.closed = True
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.kill()


def run_program(argv: list[str], stdin: bytes, *, timeout: float, cwd: Path | None,
                env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run ``argv`` to completion (see :class:`ProgramRun`). Returns (code, stdout, stderr).

    Raises TimeoutError on timeout and OSError if it cannot start.
    """
    return ProgramRun(argv, stdin, cwd=cwd, env=env).wait(timeout)
