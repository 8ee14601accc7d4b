"""A scripted HTTP target on 127.0.0.1 (the fake OpenClaw gateway and webhook receiver of the tests), and a
small client for posting to the ingress listener."""
from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    connection: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeGateway:
    """Answers each request with the next scripted ``(status, headers)`` (then ``default``); records them all."""

    default: tuple[int, dict[str, str]] = (200, {})
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        gw = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with lock:
                    gw.connections += 1
                    self.conn_no = gw.connections

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    gw.received.append(Received(self.command, self.path, dict(self.headers.items()), body,
                                                time.monotonic(), self.conn_no))
                    status, headers = gw.script.pop(0) if gw.script else gw.default
                data = json.dumps({"status": status}).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = do_PATCH = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def post(port: int, path: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None,
         timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """POST to 127.0.0.1:port; returns (status, JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, data, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()
