"""The control plane belongs to its owner: against a real daemon (``orgloop start --daemon``).

- another uid cannot apply: a child that drops to ``nobody`` is stopped by the data directory's mode, then
  (the test opens the directory) by the socket's own mode, then (the test also opens the socket) by the
  peer-credential check;
- the TCP port is read-only: ``text/plain`` and JSON POSTs, other methods, other paths and a foreign
  ``Host`` are refused;
- after every attempt ``plan`` still sees the true state (no changes), while the same request from the owner
  does change it (so the attempts were real ones);
- a taken port and a second runtime of the same data directory are clear errors.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from orgloop.control.client import ControlError, request

NOBODY = 65534
REMOVE_ROUTE = {"routes": {"add": [], "remove": ["heartbeat-to-inbox"]}, "state": {"routes": {}}}

# What an attacker runs: plain stdlib, no orgloop (the venv need not be readable by nobody).
_ATTACK = r"""
import json, socket, sys
path, body = sys.argv[1], sys.argv[2].encode()
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(path)
except OSError as exc:
    print(json.dumps({"refused_at": "connect", "error": type(exc).__name__}))
    sys.exit(0)
s.sendall(b"POST /apply HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(json.dumps({"status": int(data.split(b" ", 2)[1]), "body": data.split(b"\r\n\r\n", 1)[1].decode()}))
"""


def _as_nobody(sock_path: str) -> dict:
    out = subprocess.run(["/usr/bin/python3", "-I", "-c", _ATTACK, sock_path, json.dumps(REMOVE_ROUTE)],
                         user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _assert_unchanged(daemon) -> None:
    """``plan`` sees no change and the route still runs."""
    r = daemon.orgloop("plan", "-p", str(daemon.project))
    assert r.returncode == 0 and "No changes" in r.stdout, (r.returncode, r.stdout, r.stderr)
    sock = daemon.record["control_socket"]
    routes = [x["name"] for x in request(sock, "GET", "/status")["routes"]]
    assert routes == ["heartbeat-to-inbox"]


def _owner_applies(daemon) -> None:
    """The very request the others sent, from the owner: it changes the runtime (so theirs would have)."""
    request(daemon.record["control_socket"], "POST", "/apply", REMOVE_ROUTE)
    r = daemon.orgloop("plan", "-p", str(daemon.project))
    assert r.returncode == 2 and "+ route heartbeat-to-inbox" in r.stdout, r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root (CI runs as root)")
def test_another_uid_cannot_apply(daemon):
    sock = daemon.record["control_socket"]
    data = daemon.data_dir
    assert sock == str(data / "control.sock")
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600

    # 1. as the runtime leaves it: the 0700 data directory refuses
    assert _as_nobody(sock) == {"refused_at": "connect", "error": "PermissionError"}
    _assert_unchanged(daemon)
    # 2. the directory opened for traversal by the test: the socket's own 0600 refuses
    os.chmod(data, 0o711)
    assert _as_nobody(sock) == {"refused_at": "connect", "error": "PermissionError"}
    _assert_unchanged(daemon)
    # 3. the socket opened too (a wrong mode): the peer-credential check refuses
    os.chmod(sock, 0o666)
    reply = _as_nobody(sock)
    assert reply["status"] == 403 and f"uid {NOBODY} is not the runtime's owner" in reply["body"]
    _assert_unchanged(daemon)
    _owner_applies(daemon)


def _tcp(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
         ) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_the_tcp_port_serves_only_reads(daemon):
    port, body = daemon.port, json.dumps(REMOVE_ROUTE).encode()
    assert daemon.record["control_port"] == port
    # a cross-site "simple request" (no preflight), a JSON one, and other verbs
    assert _tcp(port, "POST", "/apply", body, {"Content-Type": "text/plain"})[0] == 404
    assert _tcp(port, "POST", "/apply", body, {"Content-Type": "application/json"})[0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH", "BREW"):
        code, text = _tcp(port, method, "/status", body, {"Content-Type": "text/plain"})
        assert code == 405 and "read-only" in text, (method, code)
    assert _tcp(port, "GET", "/state")[0] == 404           # the plan state is for the owner only
    assert _tcp(port, "GET", "/tap")[0] == 404
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host
    for host in ("evil.example", "evil.example:%d" % port, "127.0.0.1.evil.example"):
        assert _tcp(port, "GET", "/status", headers={"Host": host})[0] == 403, host
    _assert_unchanged(daemon)
    # what it does serve
    code, text = _tcp(port, "GET", "/status", headers={"Host": f"localhost:{port}"})
    status = json.loads(text)
    assert code == 200 and status["pid"] == daemon.record["pid"] and "state" not in status
    assert _tcp(port, "GET", "/healthz")[0] == 200
    code, text = _tcp(port, "GET", "/metrics", headers={"Host": f"127.0.0.1:{port}"})
    assert code == 200 and "orgloop_events_in_total" in text
    _owner_applies(daemon)


def test_a_taken_port_names_the_port_and_the_setting(daemon):
    other = daemon.home / "other"
    other.mkdir()
    from support.daemon import make_project

    project = make_project(other, daemon.port)           # the daemon holds that port
    r = daemon.orgloop("start", "-p", str(project), "--for", "1s", PROJECT_NAME="other")
    assert r.returncode == 1
    assert f"control port {daemon.port} on 127.0.0.1 is already in use" in r.stderr
    assert "runtime.control_port" in r.stderr and "Traceback" not in r.stderr


def test_a_second_runtime_of_the_same_data_directory_is_refused(daemon):
    before = daemon.record
    r = daemon.orgloop("start", "-p", str(daemon.project), "--daemon-child", "--for", "5s")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert (f"another orgloop runtime (pid {before['pid']}) already serves this data directory: its control "
            f"socket {before['control_socket']} is in use") in r.stderr
    assert daemon.record == before                       # the first one is untouched and still answers
    assert request(before["control_socket"], "GET", "/status")["pid"] == before["pid"]


def test_a_stale_socket_is_replaced_and_the_client_says_what_is_wrong(tmp_path):
    from orgloop.control.paths import socket_path

    data = tmp_path / "d"
    data.mkdir()
    path = socket_path(data)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()                                          # a socket file nobody listens on
    with pytest.raises(ControlError, match="nothing listens on the control socket"):
        request(path, "GET", "/status")
    with pytest.raises(ControlError, match="no control socket at"):
        request(tmp_path / "none.sock", "GET", "/status")
    code = ("import sys\nfrom orgloop.runtime import Runtime\nfrom orgloop.spec import RuntimeSpec\n"
            "from orgloop.control.client import request\n"
            "from pathlib import Path\n"
            f"rt = Runtime(RuntimeSpec(data_dir=Path({str(data)!r}), control_socket=Path({str(path)!r}))).start()\n"
            f"print(request({str(path)!r}, 'GET', '/status')['pid'] == os.getpid())\nrt.stop()\n")
    out = subprocess.run([sys.executable, "-c", "import os\n" + code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
    assert not path.exists()                              # removed at stop


def test_a_long_data_directory_puts_its_socket_in_a_private_runtime_directory(tmp_path, monkeypatch):
    from orgloop.control.paths import MAX_SOCKET_PATH, socket_path
    from orgloop.runtime import Runtime
    from orgloop.spec import RuntimeSpec

    data = tmp_path / ("x" * 60) / ("y" * 60)
    assert len(os.fsencode(data / "control.sock")) > MAX_SOCKET_PATH
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    path = socket_path(data)
    assert path.parent == xdg / "orgloop" and path == socket_path(data) != socket_path(data / "z")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))       # not private (0755 or so): not used
    os.chmod(tmp_path, 0o755)
    fallback = socket_path(data)
    assert fallback.parent.name.startswith(f"orgloop-{os.geteuid()}-") and fallback.parent.parent.name == "tmp"
    rt = Runtime(RuntimeSpec(data_dir=data, control_socket=path)).start()
    try:
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        assert request(path, "GET", "/status")["pid"] == os.getpid()
    finally:
        rt.stop()
    assert not path.exists()
