"""Network cuts: the harness itself (tests/support/netcut.py), then each server bus behind a cut, a
blackhole and a downed veth link (issue 12 "Connection loss": test it by cutting the network)."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from support.netcut import NetLab, TcpProxy


class EchoServer:
    """A loopback echo server for the harness's own tests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo():
    server = EchoServer()
    yield server
    server.close()


def roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


# ---------------------------------------------------------------------- the harness
def test_the_proxy_forwards_cuts_blackholes_delays_and_restores(echo):
    with TcpProxy(("127.0.0.1", echo.port)) as proxy:
        a = socket.create_connection(proxy.address, 5)
        a.settimeout(5)
        assert roundtrip(a, b"x" * 200_000) == b"x" * 200_000 and proxy.connections == 1

        proxy.blackhole()                       # open, silent, no error
        a.settimeout(0.5)
        a.sendall(b"held")
        with pytest.raises(socket.timeout):
            a.recv(10)
        late = socket.create_connection(proxy.address, 5)     # accepted, then held silent
        late.settimeout(0.5)
        late.sendall(b"late")
        with pytest.raises(socket.timeout):
            late.recv(10)
        proxy.restore()                         # what was held flows on
        a.settimeout(5)
        late.settimeout(5)
        assert a.recv(10) == b"held" and late.recv(10) == b"late"

        proxy.delay(0.3)
        started = time.monotonic()
        assert roundtrip(a, b"slow") == b"slow"
        assert time.monotonic() - started >= 0.6  # 0.3 s each way (a lower bound: never flaky)
        proxy.restore()

        proxy.cut()                             # existing connections are reset ...
        with pytest.raises(OSError):
            roundtrip(a, b"gone")
            roundtrip(a, b"gone")
        with pytest.raises(OSError):            # ... and so are new ones
            with socket.create_connection(proxy.address, 5) as fresh:
                roundtrip(fresh, b"no")
        assert proxy.connections == 0
        proxy.restore()
        b = socket.create_connection(proxy.address, 5)
        b.settimeout(5)
        assert roundtrip(b, b"back") == b"back"
        for s in (a, late, b):
            s.close()
    assert proxy.connections == 0


def test_a_netlab_link_goes_down_and_up_and_everything_is_removed(tmp_path):
    with NetLab() as lab:
        srv, member = lab.namespace("srv"), lab.namespace("m1")
        link = lab.link(srv, member)
        script = tmp_path / "echo.py"
        script.write_text(
            "import socket, sys\n"
            "s = socket.create_server((sys.argv[1], 0)); print(s.getsockname()[1], flush=True)\n"
            "while True:\n"
            "    c, _ = s.accept(); c.sendall(c.recv(100)); c.close()\n")
        server = srv.popen([sys.executable, str(script), "0.0.0.0"], stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
        probe = (f"import socket; c = socket.create_connection(('{link.a_addr}', {port}), 2); "
                 "c.sendall(b'hi'); print(c.recv(10).decode())")
        assert member.run([sys.executable, "-c", probe]).strip() == "hi"
        with lab.proxy(srv, ("127.0.0.1", port)) as proxy:     # the test's own way in
            with socket.create_connection(proxy.address, 5) as c:
                c.settimeout(5)
                assert roundtrip(c, b"yo") == b"yo"
        link.down()
        with pytest.raises(Exception, match="unreachable|timed out"):
            member.run([sys.executable, "-c", probe])
        link.up()
        assert member.run([sys.executable, "-c", probe]).strip() == "hi"
        names = [ns.name for ns in lab.namespaces]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(n in listed for n in names) and server.poll() is not None
