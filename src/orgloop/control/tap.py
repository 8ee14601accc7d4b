"""``orgloop tap``: copies of the events the router hands to routes, for whoever is watching.

The router calls :meth:`TapHub.offer` once per dispatched batch, and only while someone taps
(``if hub.subscribers``), so an untapped pipeline pays one attribute test per batch and nothing per event.
Each subscription has a bounded queue of encoded lines: when its client reads too slowly, new events are
dropped and counted (the client is told how many), and the pipeline never waits for a tap. Values under
secret-looking keys (token, secret, password, key, credential) are replaced by ``***``.
"""
from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any, Iterable

from orgloop.plan import looks_secret

__all__ = ["TapHub", "TapSubscription", "mask_secrets"]

MASK = "***"


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {k: MASK if isinstance(k, str) and looks_secret(k) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


class TapSubscription:
    """One watcher: filters, a bounded queue of JSON lines, and a count of what it missed."""

    def __init__(self, route: str | None = None, source: str | None = None, event_type: str | None = None,
                 capacity: int = 1000) -> None:
        self.route, self.source, self.event_type = route, source, event_type
        self.capacity = capacity
        self.lines: deque[bytes] = deque()
        self.dropped = 0
        self.closed = False
        self._bell = threading.Event()

    def offer(self, items: Iterable[tuple[int, dict[str, Any], Any]]) -> None:
        """On the router's thread: queue the matching ``(seq, event, route)`` items, never waiting."""
        added = False
        for seq, event, route in items:
            if ((self.route is not None and route.name != self.route)
                    or (self.source is not None and event.get("source") != self.source)
                    or (self.event_type is not None and event.get("type") != self.event_type)):
                continue
            if len(self.lines) >= self.capacity:
                self.dropped += 1
                continue
            record = {"route": route.name, "actor": route.spec.actor, "seq": seq, "event": mask_secrets(event)}
            self.lines.append(json.dumps(record, default=str, separators=(",", ":")).encode() + b"\n")
            added = True
        if added:
            self._bell.set()

    def take(self, timeout: float) -> list[bytes]:
        """The queued lines (waiting up to ``timeout`` seconds for the first one)."""
        if not self.lines:
            self._bell.wait(timeout)
        self._bell.clear()
        out = []
        while self.lines:
            out.append(self.lines.popleft())
        return out

    def close(self) -> None:
        self.closed = True
        self._bell.set()


class TapHub:
    """The runtime's set of tap subscriptions (replaced, never edited in place, so the router can iterate it)."""

    def __init__(self) -> None:
        self.subscribers: tuple[TapSubscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, sub: TapSubscription) -> TapSubscription:
        with self._lock:
            self.subscribers = self.subscribers + (sub,)
        return sub

    def unsubscribe(self, sub: TapSubscription) -> None:
        with self._lock:
            self.subscribers = tuple(s for s in self.subscribers if s is not sub)
        sub.close()

    def offer(self, items: list[tuple[int, dict[str, Any], Any]]) -> None:
        for sub in self.subscribers:
            sub.offer(items)

    def close(self) -> None:
        """End every tap (the runtime is stopping)."""
        with self._lock:
            subs, self.subscribers = self.subscribers, ()
        for sub in subs:
            sub.close()
