"""Membership: each member heartbeats ``{member, role, host, pid, started, last_seen}`` into the shared
store with a TTL (three heartbeats); a member that stops heartbeating drops out of ``orgloop status``."""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from typing import Any, Callable

from orgloop.fleet.store import FleetStore, StoreError

__all__ = ["Membership", "new_member_id"]

log = logging.getLogger("orgloop.fleet")


def new_member_id() -> str:
    """A member id unique across the fleet and across restarts: ``<host>-<pid>-<random>``."""
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class Membership:
    """Heartbeats this member's record every ``interval`` seconds on a thread of its own."""

    def __init__(self, store: FleetStore, member: str, role: str, interval: float = 2.0,
                 extra: Callable[[], dict[str, Any]] | None = None) -> None:
        self.store, self.member, self.role, self.interval = store, member, role, interval
        self.extra = extra
        self.record = {"member": member, "role": role, "host": socket.gethostname(), "pid": os.getpid(),
                       "started": time.time()}
        self.error: str | None = None     # the last heartbeat's failure (None: it reached the store)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="orgloop-fleet-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        record = {**self.record, "last_seen": time.time(), **(self.extra() if self.extra else {})}
        self.store.heartbeat(self.member, record, self.interval * 3)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except StoreError as exc:
                if self.error is None:
                    log.warning("fleet heartbeat failed: %s", exc)
                self.error = str(exc)
            else:
                if self.error is not None:
                    log.warning("fleet heartbeat: the shared store answers again")
                self.error = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            self.store.leave(self.member)
        except StoreError as exc:
            log.debug("leaving the fleet: %s", exc)
