"""The owner's control socket: HTTP over a Unix domain socket that only the runtime's user can use.

``<data>/control.sock`` (see :mod:`orgloop.control.paths` for long paths) is created with mode 0600 in a
0700 directory (bound under a temporary name, chmodded, then renamed into place, so it is never
reachable with a wider mode), and every connection's peer credentials (``SO_PEERCRED``) must name the
runtime's own uid (or root) as well. ``curl --unix-socket <path> http://orgloop/status`` works.

Endpoints: ``GET /healthz|/metrics|/status`` (as on the TCP port), ``GET /state`` (the plan state the
runtime runs, for ``plan``), ``POST /apply`` (reconcile, :mod:`orgloop.reconcile`), ``POST /stop`` (the
clean shutdown a SIGTERM gives), ``POST /dead-letters/replay`` (``{"ids": [...]}``, or ``{"ids": null}`` for
all: each to its own route, as recorded, see :mod:`orgloop.delivery.dlq`), ``GET /tap?route=&source=&type=``
(a stream of JSON lines, see :mod:`orgloop.control.tap`).
"""
from __future__ import annotations

import json
import os
import select
import socket
import socketserver
import struct
import threading
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

from orgloop.control.http import READ_ONLY_PATHS, JsonHandler, Reply, json_reply, read_only_view
from orgloop.control.paths import private_dir, take_lock
from orgloop.control.tap import TapSubscription

__all__ = ["OwnerServer", "ENDPOINTS"]

_MAX_BODY = 1 << 30


def _state(rt: Any, body: Any) -> Reply:
    return json_reply(200, {"state": rt.applied_state})


def _apply(rt: Any, body: Any) -> Reply:
    from orgloop.reconcile import ReconcileError, apply_request

    try:
        return json_reply(200, apply_request(rt, body))
    except ReconcileError as exc:
        return json_reply(409, {"error": str(exc)})


def _stop(rt: Any, body: Any) -> Reply:
    if not rt.request_stop():
        return json_reply(409, {"error": "this runtime is not waiting for a stop request (it is run as a library)"})
    return json_reply(202, {"stopping": True, "pid": os.getpid()})


def _replay(rt: Any, body: Any) -> Reply:
    if not isinstance(body, dict) or "ids" not in body:
        raise ValueError('expected {"ids": [entry ids]} or {"ids": null} for every dead letter')
    ids = body["ids"]
    if ids is not None and (not isinstance(ids, list)
                            or not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
        raise ValueError('"ids" must be a list of positive integers, or null')
    if rt.dlq is None:
        return json_reply(409, {"error": "this runtime has no data directory, so no dead-letter store"})
    replayed = rt.replay_dead_letters(ids)
    found = set(replayed)
    return json_reply(200, {"replayed": replayed,
                            "not_found": [] if ids is None else [i for i in dict.fromkeys(ids) if i not in found]})


# (method, path) -> handler(runtime, parsed JSON body) -> reply. Streaming endpoints are in the handler.
ENDPOINTS: dict[tuple[str, str], Callable[[Any, Any], Reply]] = {
    ("GET", "/state"): _state,
    ("POST", "/apply"): _apply,
    ("POST", "/stop"): _stop,
    ("POST", "/dead-letters/replay"): _replay,
}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class OwnerServer:
    """Serve the control API on ``path``; ``data_dir`` holds the lock that keeps a second runtime away."""

    def __init__(self, runtime: Any, path: Path, data_dir: Path) -> None:
        self.path = Path(path)
        rt = runtime
        owners = {os.geteuid(), 0}

        class Handler(JsonHandler):
            def dispatch(self) -> None:
                uid = _peer_uid(self.connection)
                if uid not in owners:
                    self.read_body(1 << 20)    # a small body is read, so the refusal reaches the client
                    self.send(json_reply(403, {"error": f"uid {uid} is not the runtime's owner"}))
                    return
                path, _, query = self.path.partition("?")
                if (self.command, path) == ("GET", "/tap"):
                    self._tap(parse_qs(query))
                    return
                if self.command == "GET":
                    reply = read_only_view(rt, path)
                    if reply is not None:
                        self.send(reply)
                        return
                raw = self.read_body(_MAX_BODY)
                handler = ENDPOINTS.get((self.command, path))
                if handler is None:
                    known = any(p == path for _m, p in ENDPOINTS) or path in READ_ONLY_PATHS
                    self.send(json_reply(405 if known else 404, {"error": f"no endpoint {self.command} {path}"}))
                    return
                try:
                    body = json.loads(raw) if raw else None
                    reply = handler(rt, body)
                except ValueError as exc:
                    reply = json_reply(400, {"error": f"bad request: {exc}"})
                except Exception as exc:   # a plug-in failed while being started: report it, keep serving
                    reply = json_reply(500, {"error": f"{type(exc).__name__}: {exc}"})
                self.send(reply)

            def _tap(self, query: dict[str, list[str]]) -> None:
                def one(name: str) -> str | None:
                    return query[name][-1] if query.get(name) else None

                sub = rt.taps.subscribe(TapSubscription(one("route"), one("source"), one("type")))
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/x-ndjson")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(b'{"tap":"subscribed"}\n')
                    reported = 0
                    while not sub.closed:
                        lines = sub.take(0.5)
                        if sub.dropped != reported:
                            lines.append(json.dumps({"tap": "dropped", "count": sub.dropped - reported}).encode()
                                         + b"\n")
                            reported = sub.dropped
                        if lines:
                            self.wfile.write(b"".join(lines))
                        elif _hung_up(self.connection):
                            break
                except OSError:        # the client went away
                    pass
                finally:
                    rt.taps.unsubscribe(sub)

        private_dir(self.path.parent)
        private_dir(Path(data_dir))
        self._lock_fd = take_lock(Path(data_dir), self.path)
        try:
            self.server = _Server(str(self.path), Handler, bind_and_activate=False)
            tmp = self.path.with_name(f".cs{os.getpid()}")      # no longer than the final name (path limit)
            tmp.unlink(missing_ok=True)
            self.server.socket.bind(str(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)        # a stale socket of a dead runtime is replaced
            st = os.stat(self.path)
            self._identity = (st.st_dev, st.st_ino)
            self.server.server_activate()
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._thread = threading.Thread(target=self.server.serve_forever, name="orgloop-control-socket",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, remove the socket, release the lock."""
        if self._thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._identity:     # still ours (not one a later runtime bound)
                self.path.unlink()
        except OSError:
            pass
        os.close(self._lock_fd)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _hung_up(conn: socket.socket) -> bool:
    """True once the client closed its end (readable with nothing to read)."""
    readable, _, _ = select.select([conn], [], [], 0)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
