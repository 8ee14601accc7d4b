"""The HTTP plumbing every fake shares: a threaded server on 127.0.0.1, a request log, injected faults."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]          # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> "Answer":
        return cls(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


class FakeServer:
    """Subclasses implement ``handle(request) -> Answer``. ``fail_next(n, status)`` answers the next ``n``
    requests with that status (a 5xx storm); ``garbage_next(n)`` answers 200 with a body that is not JSON."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._faults: list[Answer] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                with fake.lock:
                    fake.requests.append(req)
                    fault = fake._faults.pop(0) if fake._faults else None
                answer = fault or fake.handle(req)
                self.send_response(answer.status)
                self.send_header("Date", formatdate(fake.clock(), usegmt=True))
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(self, req: Request) -> Answer:
        raise NotImplementedError

    def fail_next(self, n: int, status: int = 500) -> None:
        with self.lock:
            self._faults += [Answer.json(status, {"message": "Server Error"}) for _ in range(n)]

    def garbage_next(self, n: int) -> None:
        with self.lock:
            self._faults += [Answer(200, b'{"truncated": [', {"Content-Type": "application/json"}) for _ in range(n)]

    def start(self) -> "FakeServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
