"""A small JSON-over-HTTP client shared by the polling sources (``github``, ``linear``).

One keep-alive connection per client (``http.client``), a timeout on every request, and answers read
into :class:`Response`. Nothing here retries: the caller decides what a status means (a rate limit, a
transient failure) and gates its next poll with :class:`orgloop.connectors._pollbase.PollGate`.
Request headers are never logged, so a token cannot leak through this module.
"""
from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ApiError", "Response", "JsonClient"]


class ApiError(Exception):
    """A request failed in a way worth a back-off: network error, 5xx, bad JSON, 4xx (``status`` 0 when no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Response:
    status: int
    headers: dict[str, str]       # lower-cased names
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; :class:`ApiError` when it is not."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise ApiError(f"HTTP {self.status}: the body is not valid JSON ({exc})", self.status) from None

    def server_time(self) -> float | None:
        """The server's clock from the ``Date`` header (epoch seconds), used to read reset times skew-free."""
        raw = self.header("date")
        if not raw:
            return None
        try:
            return parsedate_to_datetime(raw).timestamp()
        except (TypeError, ValueError):
            return None


class JsonClient:
    """Requests against one base URL over a reused connection (reopened after any failure)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, user_agent: str = "orgloop") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.user_agent = user_agent
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.timeout)
        return self._conn

    def path_of(self, url: str) -> str:
        """The request target for ``url``: an absolute URL (from a ``Link`` header) must be on this host."""
        if url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            if parts.hostname != self._host or parts.port != self._port:
                raise ApiError(f"refusing to follow a link to another host: {parts.hostname}")
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return self._prefix + url

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: Any = None) -> Response:
        """Send one request (``url`` a path below the base URL, or an absolute URL on the same host)."""
        target = self.path_of(url)
        hdrs = {"User-Agent": self.user_agent, "Accept": "application/json"}
        hdrs.update(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        with self._lock:
            try:
                conn = self._connection()
                conn.request(method, target, body=payload, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ApiError(f"{method} {self._host}{target.split('?')[0]}: {type(exc).__name__}: {exc}") from None
            if resp.getheader("connection", "").lower() == "close":
                self.close()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
