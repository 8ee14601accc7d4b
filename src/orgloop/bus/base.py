"""What every bus shares: subscriptions, filters, and the dispatch thread."""
from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from orgloop.errors import OrgloopError

__all__ = ["BusBase", "BusClosedError", "EventFilter", "Handler", "Subscription"]

log = logging.getLogger("orgloop.bus")

# A handler receives parallel lists: sequence numbers and events.
Handler = Callable[[Sequence[int], list[dict[str, Any]]], None]


class BusClosedError(OrgloopError):
    """The bus was used after ``close()``."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a subscriber wants: exact source ids and/or event types (None = any)."""

    sources: frozenset[str] | None = None
    types: frozenset[str] | None = None

    @classmethod
    def of(cls, sources: Iterable[str] | None = None, types: Iterable[str] | None = None) -> "EventFilter":
        return cls(frozenset(sources) if sources is not None else None,
                   frozenset(types) if types is not None else None)

    def matches(self, event: dict[str, Any]) -> bool:
        return ((self.sources is None or event.get("source") in self.sources)
                and (self.types is None or event.get("type") in self.types))

    @property
    def everything(self) -> bool:
        return self.sources is None and self.types is None


class Subscription:
    """A live subscription; ``cancel()`` stops deliveries to its handler."""

    def __init__(self, bus: "BusBase", flt: EventFilter, handler: Handler) -> None:
        self.bus = bus
        self.filter = flt
        self.handler = handler
        self.active = True

    def cancel(self) -> None:
        self.active = False
        self.bus._unsubscribe(self)


class BusBase:
    """Dispatch machinery shared by the buses: a bounded inbox and one thread that calls handlers.

    Subclasses implement ``_store(events) -> seqs`` (make durable, assign seqs), ``_ack_many(seqs)``,
    ``_unacked() -> iterator of (seqs, events) batches`` and optionally ``_recover()`` (batches to redeliver
    when dispatch starts) and ``_close()``.
    """

    durable = False

    def __init__(self, max_inflight: int = 100_000) -> None:
        self._subs: list[Subscription] = []
        self._inbox: collections.deque[tuple[Sequence[int], list[dict[str, Any]]]] = collections.deque()
        self._inflight = 0
        self._max_inflight = max_inflight
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.published = 0
        self.acked = 0
        self.recovering = False

    # -- publishing
    def publish(self, event: dict[str, Any]) -> int:
        """Publish one event; returns its sequence number once stored under the bus's guarantee."""
        return self.publish_many([event])[0]

    def publish_many(self, events: list[dict[str, Any]], *, wait: bool = True) -> Sequence[int]:
        """Publish events in order; returns their sequence numbers once stored under the bus's guarantee.

        Blocks while more than ``max_inflight`` published events wait for dispatch (backpressure), unless
        ``wait`` is false: the pipeline's own follow-up events must not wait for the dispatch thread,
        which may be waiting for them.
        """
        if not events:
            return []
        with self._cv:
            if self._closed:
                raise BusClosedError("the bus is closed")
            while wait and self._inflight >= self._max_inflight and not self._closed:
                self._cv.wait()
        seqs = self._store(events)
        with self._cv:
            self._inbox.append((seqs, events))
            self._inflight += len(events)
            self.published += len(events)
            self._cv.notify_all()
        return seqs

    # -- subscribing
    def subscribe(self, flt: EventFilter | None, handler: Handler) -> Subscription:
        """Call ``handler(seqs, events)`` on the dispatch thread for matching events; starts dispatch."""
        sub = Subscription(self, flt or EventFilter(), handler)
        with self._cv:
            if self._closed:
                raise BusClosedError("the bus is closed")
            self._subs.append(sub)
            if self._thread is None:
                self.recovering = True
                self._thread = threading.Thread(target=self._dispatch_loop, name=f"orgloop-bus-{type(self).__name__}",
                                                daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._cv:
            if sub in self._subs:
                self._subs.remove(sub)

    def _dispatch_loop(self) -> None:
        # Events left unacked by an earlier run go first, streamed (never all in memory at once).
        try:
            for seqs, events in self._recover():
                if self._closed:
                    return
                self._hand_over(seqs, events)
        finally:
            with self._cv:
                self.recovering = False
                self._cv.notify_all()
        while True:
            with self._cv:
                while not self._inbox and not self._closed:
                    self._cv.wait()
                if not self._inbox:
                    return
                seqs, events = self._inbox.popleft()
            self._hand_over(seqs, events)
            with self._cv:
                self._inflight -= len(events)
                self._cv.notify_all()

    def _hand_over(self, seqs: Sequence[int], events: list[dict[str, Any]]) -> None:
        with self._cv:
            subs = list(self._subs)
        for sub in subs:
                if not sub.active:
                    continue
                if sub.filter.everything:
                    s, e = seqs, events
                else:
                    picked = [i for i, ev in enumerate(events) if sub.filter.matches(ev)]
                    if not picked:
                        continue
                    s, e = [seqs[i] for i in picked], [events[i] for i in picked]
                try:
                    sub.handler(s, e)
                except Exception:  # a broken handler must not stop the bus; its events stay unacked
                    log.exception("bus subscriber %r failed on a batch of %d events", sub.handler, len(e))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every published event (and the recovered backlog) has been handed to the subscribers."""
        with self._cv:
            return self._cv.wait_for(lambda: (self._inflight == 0 and not self.recovering) or self._closed, timeout)

    # -- acks and recovery
    def ack(self, seq: int) -> None:
        self.ack_many((seq,))

    def ack_many(self, seqs: Sequence[int]) -> None:
        """Mark events fully handled (delivered or dead-lettered on every matching route)."""
        if seqs:
            self._ack_many(seqs)
            self.acked += len(seqs)

    def unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        """Batches of events not yet acked, oldest first."""
        return self._unacked()

    def close(self) -> None:
        """Stop dispatching (events already handed over are finished first) and release resources."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._close()

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "acked": self.acked, "inflight": self._inflight}

    # -- to implement
    def _store(self, events: list[dict[str, Any]]) -> Sequence[int]:
        raise NotImplementedError

    def _ack_many(self, seqs: Sequence[int]) -> None:
        raise NotImplementedError

    def _unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        raise NotImplementedError

    def _recover(self) -> Iterable[tuple[Sequence[int], list[dict[str, Any]]]]:
        return ()

    def _close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
