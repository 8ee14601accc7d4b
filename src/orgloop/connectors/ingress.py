"""The shared ingress listener: one HTTP server for every push (webhook-style) source.

It binds to ``127.0.0.1:4800`` unless ``ORGLOOP_PORT`` or the project's ``runtime.ingress_port`` says
otherwise (the variable wins, so ``orgloop hook`` and the runtime agree when it is set). Each push source
is mounted at ``POST /webhook/<source-id>`` and also at its configured ``path``.

A request goes through these steps, and each refusal is a JSON body ``{"ok": false, "error": ...}``:

1. the path names a mounted source (404), the method is POST (405);
2. ``Content-Length`` is given (411) and within the source's ``max_body`` (413, refused before reading);
3. the content type is JSON, GitHub's form encoding (``payload=<json>``) or absent (415);
4. the body arrives before the read deadline (slow clients are cut off: their socket is shut down);
5. the source's ``handle()`` checks the signature (401) and the body (400) and builds the events;
6. the events are published on the bus, and only once they are durable the answer is ``200`` with the
   source's ``answer()``. Requests on different connections publish from their own threads, so the WAL's
   group commit makes concurrent requests share one fdatasync. A bus that refuses gives 503.

Connections are served by at most ``max_connections`` threads; beyond that new connections wait in the
listen backlog, and one that found no free thread within the read deadline gets ``503``. HTTP/1.1 keep-alive is supported; an idle connection is closed after the read deadline. Ingress only
creates events: nothing it receives can change configuration.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, ClassVar
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, field_validator

from orgloop.errors import OrgloopError
from orgloop.plugins import PluginConfig
from orgloop.units import parse_size

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "Ingress", "IngressError", "PushConfig", "PushRequest", "PushSourceBase",
           "ingress_address", "is_loopback", "sign"]

log = logging.getLogger("orgloop.ingress")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4800
SIGNATURE_HEADERS = ("X-Hub-Signature-256", "X-Signature")
_JSON_TYPES = ("application/json", "text/json")
_FORM_TYPE = "application/x-www-form-urlencoded"


class IngressError(Exception):
    """A request is refused: ``status`` is the HTTP status, ``message`` says why (never a secret)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sign(secret: str | bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ingress_address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Where the listener binds: ``ORGLOOP_PORT``, else ``port`` (the project setting), else 4800."""
    env = os.environ.get("ORGLOOP_PORT", "").strip()
    if env:
        if not env.isdigit() or not 0 <= int(env) <= 65535:
            raise OrgloopError(f"ORGLOOP_PORT must be a port number (0-65535), not {env!r}")
        port = int(env)
    return host or DEFAULT_HOST, DEFAULT_PORT if port is None else port


@dataclass(frozen=True)
class PushRequest:
    """One received POST, its body fully read."""

    path: str
    headers: Message
    body: bytes
    query: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A request header (case-insensitive), or None."""
        return self.headers.get(name)

    def json(self) -> Any:
        """The body as JSON: the raw body, or the ``payload`` field of a form-encoded body (GitHub).

        Raises :class:`IngressError` 400 when it is not valid JSON.
        """
        body = self.body
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype == _FORM_TYPE:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if "payload" in form:
                body = form["payload"][0].encode()
        try:
            return json.loads(body)
        except ValueError as exc:
            raise IngressError(400, f"the body is not valid JSON: {exc}") from None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (400 when it is another JSON value)."""
        value = self.json()
        if not isinstance(value, dict):
            raise IngressError(400, f"the body must be a JSON object, not {type(value).__name__}")
        return value


# ---------------------------------------------------------------------------------------------- push sources
class PushConfig(PluginConfig):
    """Settings every push source shares."""

    secret: SecretStr | None = Field(None, description="HMAC-SHA256 secret; signed posts only when set")
    path: str | None = Field(None, description="an extra mount path besides /webhook/<source-id>")
    max_body: str | int = Field("5MB", description="largest accepted body (413 beyond it)")
    buffer_dir: str | None = Field(None, description="accepted for OrgLoop projects; unused (the WAL buffers)")
    max_buffer_size: str | None = Field(None, description="accepted for OrgLoop projects; unused")

    @field_validator("max_body")
    @classmethod
    def _size(cls, v: str | int) -> str | int:
        if parse_size(v) < 1:
            raise ValueError("max_body must be at least 1 byte")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip("/") or any(c in v for c in "?# ")):
            raise ValueError("path must be a URL path such as /hooks/github (no query, no spaces)")
        return v


class PushSourceBase:
    """Shared part of the push sources: config, mount path, body limit and the HMAC check.

    Subclasses set ``config_model`` (a :class:`PushConfig` subclass) and implement ``events(request)``.
    """

    push: ClassVar[bool] = True
    signed_by_sender: ClassVar[bool] = True       # False: its usual sender cannot sign (validate won't warn)
    config_model: ClassVar[type[PushConfig]] = PushConfig
    signature_headers: ClassVar[tuple[str, ...]] = SIGNATURE_HEADERS
    signature_prefix: ClassVar[str] = "sha256="

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        self.id = source_id
        self.config = self.config_model.model_validate(config)
        path = self.config.path
        self.path = None if path is None else "/" + path.strip("/")
        self.max_body = parse_size(self.config.max_body)
        self._secret = self.config.secret.get_secret_value().encode() if self.config.secret else None

    @property
    def signed(self) -> bool:
        """True when posts must carry a valid signature."""
        return self._secret is not None

    def handle(self, request: PushRequest) -> list[dict[str, Any]]:
        """Verify ``request`` and build its events (raises :class:`IngressError`)."""
        self.verify(request)
        return self.events(request)

    def verify(self, request: PushRequest) -> None:
        """With a secret: the first signature header present must match the body (401 otherwise)."""
        if self._secret is None:
            return
        given = next((v for h in self.signature_headers if (v := request.header(h))), None)
        if given is None:
            raise IngressError(401, f"missing signature: send {' or '.join(self.signature_headers)}")
        digest = hmac.new(self._secret, request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given.strip().encode(), (self.signature_prefix + digest).encode()):
            raise IngressError(401, "invalid signature")

    def events(self, request: PushRequest) -> list[dict[str, Any]]:
        raise NotImplementedError

    def answer(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The 200 body: what both OrgLoop answer shapes carry (``event_id`` and ``event_ids``)."""
        ids = [e["id"] for e in events]
        return {"ok": True, "event_id": ids[0] if ids else None, "events_created": len(ids), "event_ids": ids}

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------- the listener
Publish = Callable[[str, list[dict[str, Any]]], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], ingress: "Ingress", max_connections: int) -> None:
        self.ingress = ingress
        self._slots = threading.BoundedSemaphore(max_connections)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # All slots busy: stop accepting for a while (new connections wait in the listen backlog), then refuse.
        if not self._slots.acquire(timeout=self.ingress.read_timeout):
            self.ingress._count(503)
            body = b'{"ok": false, "error": "too many connections; retry later"}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                                % (len(body), body))
                request.setblocking(False)
                request.recv(1 << 16)      # what already arrived, so that closing sends FIN rather than RST
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.ingress.read_timeout)   # per recv; the watchdog bounds a request

    def log_message(self, fmt: str, *args: Any) -> None:
        pass   # requests are counted, not logged: URLs and headers may carry tokens

    def handle_one_request(self) -> None:
        ingress = self.server.ingress
        ingress._reading(self.connection, True)
        try:
            super().handle_one_request()
        finally:
            ingress._reading(self.connection, False)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad request line, headers too long) as JSON too."""
        self.close_connection = True
        self._answer(code, {"ok": False, "error": message or self.responses.get(code, ("error",))[0]})

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        self.server.ingress._count(code)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _refuse(self, code: int, message: str, *, close: bool = False) -> None:
        if close:
            self.close_connection = True    # the body was not read: the connection cannot carry another request
        self._answer(code, {"ok": False, "error": message})

    def _not_allowed(self) -> None:
        self._refuse(405, "only POST is accepted here", close=True)

    do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        ingress = self.server.ingress
        url = urlsplit(self.path)
        source = ingress.source_at(url.path)
        if source is None:
            self._refuse(404, f"no webhook source is mounted at {url.path}", close=True)
            return
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "chunked bodies are not accepted; send Content-Length", close=True)
            return
        raw_length = self.headers.get("Content-Length")
        if raw_length is None or not raw_length.strip().isdigit():
            self._refuse(411, "Content-Length is required", close=True)
            return
        length = int(raw_length)
        if length > source.max_body:
            self._refuse(413, f"the body is {length} bytes; this source accepts at most {source.max_body}",
                         close=True)
            return
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype and ctype not in _JSON_TYPES and ctype != _FORM_TYPE and not ctype.endswith("+json"):
            self._refuse(415, f"unsupported content type {ctype!r}: send application/json", close=True)
            return
        try:
            body = self.rfile.read(length)
        except OSError:    # the deadline passed (the watchdog shut the socket) or the client went away
            self.close_connection = True
            return
        if len(body) < length:
            self.close_connection = True
            return
        ingress._reading(self.connection, False)
        request = PushRequest(url.path, self.headers, body, parse_qs(url.query))
        try:
            events = source.handle(request)
        except IngressError as exc:
            self._refuse(exc.status, exc.message)
            return
        except Exception as exc:   # a source bug must not kill the listener; the message names no secret
            log.exception("push source %s failed on a request", source.id)
            self._refuse(500, f"source {source.id} failed: {type(exc).__name__}")
            return
        if events:
            try:
                ingress.publish(source.id, events)
            except Exception as exc:
                log.error("push source %s: could not store %d event(s): %s", source.id, len(events), exc)
                self._refuse(503, "the events could not be stored; retry later")
                return
        self._answer(200, source.answer(events))


class Ingress:
    """The listener. ``port=0`` picks a free port (read ``.port``). ``publish(source_id, events)`` must return
    only once the events are durable."""

    def __init__(self, publish: Publish, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 read_timeout: float = 10.0, max_connections: int = 256) -> None:
        self.publish = publish
        self.host = host
        self.read_timeout = read_timeout
        self._sources: dict[str, Any] = {}        # mount path -> source
        self._lock = threading.Lock()
        self._deadlines: dict[socket.socket, float] = {}
        self._stats_lock = threading.Lock()
        self.answers: dict[int, int] = {}         # HTTP status -> count
        self.cut_off = 0                          # connections shut down at the read deadline
        try:
            self._server = _Server((host, port), self, max_connections)
        except OSError as exc:
            raise OrgloopError(f"cannot listen for webhooks on {host}:{port}: {exc.strerror or exc} "
                               "(set ORGLOOP_PORT or runtime.ingress_port to another port)") from None
        self.port: int = self._server.server_address[1]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._server.serve_forever, name="orgloop-ingress", daemon=True),
                         threading.Thread(target=self._watchdog, name="orgloop-ingress-watchdog", daemon=True)]

    # -- mounting
    def mount(self, source: Any) -> list[str]:
        """Mount ``source`` at ``/webhook/<id>`` and its ``path``; returns the paths."""
        if not self.signed_or_local(source):
            raise OrgloopError(f"webhook source {source.id!r} has no secret, and the ingress listens beyond "
                               f"loopback ({self.host}): set a secret or listen on 127.0.0.1")
        paths = [f"/webhook/{source.id}"] + ([source.path] if source.path else [])
        with self._lock:
            for p in paths:
                other = self._sources.get(p)
                if other is not None and other.id != source.id:
                    raise OrgloopError(f"webhook path {p} is taken by source {other.id!r}")
            for p in paths:
                self._sources[p] = source
        return paths

    def signed_or_local(self, source: Any) -> bool:
        return bool(getattr(source, "signed", False)) or is_loopback(self.host)

    def unmount(self, source_id: str) -> None:
        with self._lock:
            self._sources = {p: s for p, s in self._sources.items() if s.id != source_id}

    def source_at(self, path: str) -> Any:
        p = "/" + path.strip("/")
        return self._sources.get(p)

    # -- lifecycle
    def start(self) -> "Ingress":
        for t in self._threads:
            t.start()
        log.info("ingress listening on http://%s:%d/webhook/<source-id>", self.host, self.port)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in list(self._deadlines):
                _shut(sock)

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            answers = dict(self.answers)
        with self._lock:
            mounts = {p: s.id for p, s in self._sources.items()}
        return {"host": self.host, "port": self.port, "mounts": mounts, "answers": answers, "cut_off": self.cut_off}

    # -- internals
    def _count(self, status: int) -> None:
        with self._stats_lock:
            self.answers[status] = self.answers.get(status, 0) + 1

    def _reading(self, sock: socket.socket, on: bool) -> None:
        """A connection started (or finished) reading a request: the watchdog bounds that time."""
        with self._lock:
            if on:
                self._deadlines[sock] = time.monotonic() + self.read_timeout
            else:
                self._deadlines.pop(sock, None)

    def _watchdog(self) -> None:
        tick = min(0.25, self.read_timeout / 4)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._lock:
                late = [s for s, d in self._deadlines.items() if d <= now]
                for s in late:
                    del self._deadlines[s]
            for s in late:
                self.cut_off += 1
                _shut(s)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
