"""Outbound HTTP for actors: pooled keep-alive connections, timeouts, and what a status means for delivery.

Each delivery worker thread keeps one persistent connection per target (``http.client``); a connection
that the server closed while idle is reopened once, transparently. :meth:`HttpTarget.deliver` turns the
answer into the delivery outcome: 2xx is delivered; 408, 429 and 5xx raise a retryable
:class:`~orgloop.connectors.DeliveryError` carrying ``Retry-After`` (seconds or an HTTP date) as its
``retry_after``; any other status raises a non-retryable one (the event goes to dead letters). Errors name
the target as ``scheme://host:port/path`` only: no credentials, no query string, no headers.
"""
from __future__ import annotations

import http.client
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Mapping
from urllib.parse import urlsplit

from orgloop.connectors import DeliveryError

__all__ = ["HttpTarget", "retry_after_seconds"]

_RETRYABLE = {408, 425, 429}


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (None when absent or unreadable; never negative)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class HttpTarget:
    """One HTTP(S) endpoint an actor posts to."""

    def __init__(self, url: str, *, timeout: float, name: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{name}: url must be http:// or https:// with a host, not {url!r}")
        self.name = name
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path or "/"
        self.query = parts.query
        self.timeout = timeout
        self.display = f"{parts.scheme}://{self.host}:{self.port}{self.base_path}"
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)

    def request(self, method: str, body: bytes, headers: Mapping[str, str],
                path: str | None = None) -> tuple[int, http.client.HTTPResponse, bytes]:
        """Send one request on this thread's connection; returns (status, response, body). Raises OSError."""
        target = path if path is not None else self.base_path
        if self.query:
            target += ("&" if "?" in target else "?") + self.query
        for attempt in (1, 2):
            reused = getattr(self._local, "conn", None) is not None
            conn = self._connection()
            try:
                conn.request(method, target, body, dict(headers))
                resp = conn.getresponse()
                data = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if reused and attempt == 1:
                    continue           # the server closed an idle keep-alive connection: reopen once
                raise
            except (OSError, http.client.HTTPException):
                self._drop()
                raise
            if resp.will_close:
                self._drop()
            return resp.status, resp, data
        raise AssertionError("unreachable")

    def deliver(self, method: str, body: bytes, headers: Mapping[str, str], path: str | None = None) -> bytes:
        """Request and classify (see the module doc); returns the answer body of a 2xx."""
        where = self.display if path is None else f"{self.scheme}://{self.host}:{self.port}{path}"
        try:
            status, resp, data = self.request(method, body, headers, path)
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"{self.name}: {method} {where} failed: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return data
        text = data[:200].decode("utf-8", "replace").strip()
        message = f"{self.name}: {method} {where} answered {status}" + (f": {text}" if text else "")
        if status in _RETRYABLE or status >= 500:
            raise DeliveryError(message, retry_after=retry_after_seconds(resp.getheader("Retry-After")))
        raise DeliveryError(message, retryable=False)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
