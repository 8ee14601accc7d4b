"""What both listeners share, and the read-only TCP listener on 127.0.0.1.

The TCP listener answers ``GET /healthz`` (200/503), ``GET /metrics`` (Prometheus text) and ``GET /status``
(JSON counters: no event payloads, no configuration, no secrets). Every other method is 405, every other
path 404, and a ``Host`` header naming anything but a loopback address is 403 (so a web page that rebinds
its DNS name to 127.0.0.1 cannot read it either). Nothing here changes the runtime: mutating calls go
over the owner's control socket (:mod:`orgloop.control.server`).
"""
from __future__ import annotations

import errno
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from orgloop.control.metrics import render_metrics

__all__ = ["Reply", "json_reply", "read_only_view", "JsonHandler", "ReadOnlyServer", "ControlPortError",
           "READ_ONLY_PATHS"]

Reply = tuple[int, bytes, str]
READ_ONLY_PATHS = ("/healthz", "/metrics", "/status")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


class ControlPortError(RuntimeError):
    """The configured control port cannot be listened on (taken, or not allowed)."""


def json_reply(code: int, obj: Any) -> Reply:
    return code, (json.dumps(obj, default=str) + "\n").encode(), "application/json"


def read_only_view(runtime: Any, path: str) -> Reply | None:
    """The reply to ``GET path`` for one of :data:`READ_ONLY_PATHS`, else None."""
    if path == "/healthz":
        ok, problems = runtime.healthy()
        return json_reply(200 if ok else 503, {"ok": ok, "problems": problems})
    if path == "/metrics":
        return 200, render_metrics(runtime).encode(), "text/plain; version=0.0.4"
    if path == "/status":
        return json_reply(200, runtime.status())
    return None


class JsonHandler(BaseHTTPRequestHandler):
    """Quiet request handler with one entry point for every method: :meth:`dispatch`."""

    def log_message(self, fmt: str, *args: Any) -> None:   # keep the terminal quiet
        pass

    def send(self, reply: Reply, headers: dict[str, str] | None = None) -> None:
        code, data, ctype = reply
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # http.server looks up do_<METHOD>; every method, known or made up, goes to dispatch().
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def dispatch(self) -> None:
        raise NotImplementedError

    def read_body(self, limit: int) -> bytes | None:
        """The request body, or None when it is larger than ``limit`` bytes (left unread)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if 0 <= length <= limit else None


class ReadOnlyServer:
    """``GET /healthz|/metrics|/status`` on a loopback TCP port; ``port=0`` picks a free one (see ``.port``)."""

    def __init__(self, runtime: Any, port: int, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the control endpoint listens on loopback only")
        rt = runtime

        class Handler(JsonHandler):
            def dispatch(self) -> None:
                if self.command != "GET":
                    self.read_body(1 << 20)   # read (and ignore) a small body, so the refusal reaches the client
                host_header = self.headers.get("Host")
                if host_header is not None and _host_name(host_header) not in _LOOPBACK_HOSTS:
                    self.send(json_reply(403, {"error": f"Host {host_header!r} is not a loopback address"}))
                    return
                path = self.path.split("?", 1)[0]
                if path not in READ_ONLY_PATHS:
                    self.send(json_reply(404, {"error": f"no such endpoint {path}"}))
                elif self.command != "GET":
                    self.send(json_reply(405, {"error": f"{self.command} is not allowed: this endpoint is "
                                                        "read-only (changes go over the control socket)"}),
                              {"Allow": "GET"})
                else:
                    reply = read_only_view(rt, path)
                    assert reply is not None
                    self.send(reply)

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be listened on ({exc.strerror})"
            raise ControlPortError(f"control port {port} on {host} {why}; change runtime.control_port in "
                                   "the project (or stop whatever listens there)") from None
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="orgloop-control-tcp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


def _host_name(header: str) -> str:
    """``Host`` without its port: ``127.0.0.1:9000`` -> ``127.0.0.1``, ``[::1]:9000`` -> ``[::1]``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header
