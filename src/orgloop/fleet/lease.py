"""A source's lease as one member sees it: held or not, its epoch, and until when it is surely valid.

The store's expiry runs on the server's clock. This member counts the lease valid only until
``sent + ttl * (1 - SAFETY)``, where ``sent`` is when the request that took or renewed it was sent, so it
stops trusting the lease before the server could let it lapse (even with the reply delayed and clocks
drifting apart by up to ``SAFETY``). It renews every ``ttl / 4`` (so a renewed lease always has more
than half its TTL left); a source starts a poll only with at least
``ttl / 2`` of validity left, and publishes a poll's events only if the lease is still valid after it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

from orgloop.fleet.store import FleetStore, StoreError

__all__ = ["SourceLease", "SAFETY"]

log = logging.getLogger("orgloop.fleet")
#: The share of the TTL a member gives up to clock drift and reply delays.
SAFETY = 0.2


class SourceLease:
    """The lease of ``source`` for ``member`` (see the module docstring)."""

    def __init__(self, store: FleetStore, source: str, member: str, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.source, self.member, self.ttl = store, source, member, ttl
        self.clock = clock
        self.epoch = 0                 # 0: not held
        self._valid_until = 0.0
        self._next_renew = 0.0
        self.acquired = 0              # how many times this member took it (each a new epoch)

    def valid(self, need: float = 0.0) -> bool:
        """Held, and surely still valid ``need`` seconds from now."""
        return self.epoch != 0 and self.clock() + need < self._valid_until

    def keep(self) -> bool:
        """Take or renew the lease when due; True while it is held with at least half its TTL left, i.e.
        while a poll may start. A failed renew keeps the old validity, which then runs out by itself."""
        now = self.clock()
        if now >= self._next_renew:
            try:
                epoch = self.store.acquire(self.source, self.member, self.ttl)
            except StoreError as exc:
                log.warning("source %s: cannot renew its lease: %s", self.source, exc)
                self._next_renew = now + min(1.0, self.ttl / 10)
            else:
                if epoch:
                    if epoch != self.epoch:
                        self.acquired += 1
                        log.info("source %s: lease taken by %s with epoch %d", self.source, self.member, epoch)
                    self.epoch = epoch
                    self._valid_until = now + self.ttl * (1 - SAFETY)
                elif self.epoch:
                    log.warning("source %s: lease (epoch %d) lost to another member", self.source, self.epoch)
                    self.epoch = 0
                self._next_renew = now + self.ttl / 4
        return self.valid(self.ttl / 2)

    def drop(self) -> None:
        """Stop holding it (a checkpoint write was refused: another member has a later epoch)."""
        self.epoch = 0
        self._next_renew = 0.0

    def release(self) -> None:
        """Give it up at shutdown, so another member takes it at once rather than after the TTL."""
        if self.epoch:
            try:
                self.store.release(self.source, self.member, self.epoch)
            except StoreError as exc:
                log.debug("source %s: releasing its lease: %s", self.source, exc)
            self.epoch = 0
