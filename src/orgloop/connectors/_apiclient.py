"""A small JSON-over-HTTP client shared by the polling sources (``github``, ``linear``).

Requests go over :class:`~orgloop.connectors.httpclient.HttpTarget` (the actors' keep-alive connection
with timeouts); answers are read into :class:`Response`. Nothing here retries: the caller decides what a status means (a rate limit, a
transient failure) and gates its next poll with :class:`orgloop.connectors._pollbase.PollGate`.
Request headers are never logged, so a token cannot leak through this module.
"""
from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from orgloop.connectors.httpclient import HttpTarget

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
    """JSON requests against one base URL over :class:`~orgloop.connectors.httpclient.HttpTarget`'s
    keep-alive connection (reopened after a failure)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, user_agent: str = "orgloop") -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host, self._port = parts.hostname, parts.port
        self._prefix = parts.path.rstrip("/")
        self.user_agent = user_agent
        self._target = HttpTarget(f"{parts.scheme}://{parts.netloc}/", timeout=timeout, name=user_agent)

    def path_of(self, url: str) -> str:
        """The request target for ``url``: an absolute URL (from a ``Link`` header) must be on this host."""
        if url.startswith(("http://", "https://")):
            parts = urlsplit(url)
            if parts.hostname != self._host or parts.port != self._port:
                raise ApiError(f"refusing to follow a link to another host: {parts.hostname}")
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return (self._prefix + url) or "/"

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: Any = None) -> Response:
        """Send one request (``url`` a path below the base URL, or an absolute URL on the same host)."""
        target = self.path_of(url)
        hdrs = {"User-Agent": self.user_agent, "Accept": "application/json"}
        hdrs.update(headers or {})
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            status, resp, data = self._target.request(method, payload, hdrs, target)
        except (OSError, http.client.HTTPException) as exc:
            raise ApiError(f"{method} {self._host}{target.split('?')[0]}: {type(exc).__name__}: {exc}") from None
        return Response(status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        self._target.close()
