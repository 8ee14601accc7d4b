"""Talking to a runtime's control socket: one JSON request, or a stream of JSON lines (``tap``)."""
from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any, Iterator

__all__ = ["ControlError", "request", "stream"]


class ControlError(RuntimeError):
    """The control socket did not answer, or answered with an error (``status`` is the HTTP code)."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("orgloop", timeout=timeout)
        self._socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _open(sock_path: Path, method: str, path: str, body: Any, timeout: float | None
          ) -> tuple[_UnixConnection, http.client.HTTPResponse]:
    conn = _UnixConnection(sock_path, timeout)
    data = None if body is None else json.dumps(body, default=str).encode()
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        return conn, conn.getresponse()
    except FileNotFoundError:
        conn.close()
        raise ControlError(f"no control socket at {sock_path} (is the runtime running?)") from None
    except ConnectionRefusedError:
        conn.close()
        raise ControlError(f"nothing listens on the control socket {sock_path} (a runtime that is gone?)") from None
    except PermissionError:
        conn.close()
        raise ControlError(f"the control socket {sock_path} belongs to another user (permission denied)") from None
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise ControlError(f"the control socket {sock_path} did not answer: {exc}") from None


def request(sock_path: Path, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One request; the reply's JSON (or text, for ``/metrics``). Raises :class:`ControlError`."""
    conn, resp = _open(sock_path, method, path, body, timeout)
    try:
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ControlError(f"the control socket {sock_path} did not answer: {exc}") from None
    finally:
        conn.close()
    if "json" not in (resp.getheader("Content-Type") or ""):
        payload: Any = raw.decode("utf-8", "replace")
    else:
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            raise ControlError(f"the control socket {sock_path} answered with something that is not JSON") from None
    if resp.status >= 400:
        message = str(payload["error"]) if isinstance(payload, dict) and payload.get("error") else f"HTTP {resp.status}"
        raise ControlError(message, resp.status, payload)
    return payload


def stream(sock_path: Path, path: str, timeout: float | None = None) -> Iterator[dict[str, Any]]:
    """The JSON lines of a streaming endpoint, until the runtime closes it (the caller may stop early)."""
    conn, resp = _open(sock_path, "GET", path, None, timeout)
    try:
        if resp.status >= 400:
            try:
                payload = json.loads(resp.read() or b"null")
            except ValueError:
                payload = None
            message = str(payload["error"]) if isinstance(payload, dict) and payload.get("error") else \
                f"HTTP {resp.status}"
            raise ControlError(message, resp.status, payload)
        while True:
            try:
                line = resp.readline()
            except (OSError, http.client.HTTPException) as exc:
                raise ControlError(f"the control socket {sock_path} stopped answering: {exc}") from None
            if not line:
                return
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict):
                yield item
    finally:
        conn.close()
