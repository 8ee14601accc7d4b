"""What every bus shares: publishing, pull with credit, subscriptions, filters, the dispatch thread.

**The seam a bus implements** (decisions.md "The bus seam"). A bus is a durable (or not) log that
consumers *pull* from. A new bus (NATS, Redis, Kafka) subclasses :class:`BusBase` and implements:

``_store(events) -> refs``
    Make ``events`` durable under the bus's guarantee, in order, and return one opaque *ref* per event
    (hashable; :class:`FileWalBus` uses the WAL seq). Must be safe to call from several threads at once.
``_fetch(max, timeout) -> (refs, events)``
    Up to ``max`` events not handed out yet in this session, oldest first, waiting up to ``timeout``
    seconds for the first one (``([], [])`` on timeout). It starts with what an earlier run left unacked
    (redeliveries), then new events. A bus with server-side redelivery (JetStream ack wait, Redis
    ``XAUTOCLAIM``) may also return events handed out earlier and not acked. Each returned event is a
    dict the consumer may keep; it carries its ref in the envelope field named by ``ref_field`` (``seq``,
    an int, on FileWalBus and InMemoryBus; ``bus_ref``, a string, on the others). Called from one
    thread at a time (the dispatch thread, or a caller of :meth:`fetch`).
``_ack_many(refs)``
    The consumer is finished with these events (delivered or dead-lettered on every route). Refs arrive
    in any order, a few at a time; commit them in batches, not one by one.
``_unacked() -> iterator of (refs, events)``
    Everything not acked, oldest first (for tools and tests; may be slow).
``_close()``
    Release resources; called once, after the dispatch thread stopped.
``stats() -> dict``
    Extend ``super().stats()`` with the bus's own figures.
``_admit(count)`` (optional)
    Called with ``self._cv`` held before a publish that may wait (not for the pipeline's own follow-ups);
    a bus may wait on ``self._cv`` here to keep an in-memory buffer bounded, but should not wait while the
    dispatch thread waits for credit (``self._credit_waiting``): a slow actor must never hold sources.
``_idle()`` (optional)
    Called while consumers have no credit, so a bus can keep a server session alive without fetching.
``_wake()`` (optional)
    Interrupt a ``_fetch`` blocked in its timeout (used by ``close``); buses whose ``_fetch`` waits on
    :meth:`_wait_for_events` need nothing here.

Everything else (publishing with the envelope fields stripped, credit, filters, subscriptions, drain,
close) lives here. ``tests/bus/conformance.py`` is the contract: every bus must pass it.

**Credit.** Consumers grant credit: the dispatch thread fetches only as many events as every
subscription's ``credit()`` allows (the router: the free room in the actor lanes that block). A slow
actor therefore leaves events unacked in the bus, not in memory. Whoever frees room calls
:meth:`BusBase.credit_available` so a dispatch thread waiting for credit wakes at once.

**Order.** Per-key (per source) order is promised for first deliveries. A redelivery after a failure,
a crash or a dead fleet member may arrive out of order.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

from orgloop.errors import OrgloopError

__all__ = ["BusBase", "BusClosedError", "escape_token", "EventFilter", "Handler", "Ref", "Subscription", "ENVELOPE_REF_FIELDS"]

log = logging.getLogger("orgloop.bus")

#: An opaque acknowledgement handle: the WAL seq, a Redis stream id, a Kafka (partition, offset), ...
Ref = Hashable
#: A handler receives parallel lists: refs and events.
Handler = Callable[[Sequence[Any], list[dict[str, Any]]], None]
#: Envelope fields a bus sets on delivery and strips on publish.
ENVELOPE_REF_FIELDS = ("seq", "bus_ref")
#: The most a dispatch round fetches when no subscription limits it.
FETCH_MAX = 1000
#: How often a dispatch thread with no credit looks again, even without being woken.
CREDIT_POLL = 0.05


def escape_token(text: str) -> str:
    """``text`` safe as one NATS subject token, Kafka topic part or Redis key part: ``[A-Za-z0-9-]`` kept,
    every other character written ``_xx`` (hex of its code point), so distinct texts stay distinct.

    >>> escape_token("github.pr/1")
    'github_2epr_2f1'
    """
    return "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):02x}" for c in text)


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
    """A live subscription; ``cancel()`` stops deliveries to its handler.

    ``credit()`` (None: unlimited) says how many more events the subscriber can take now; the dispatch
    thread never fetches more than the smallest credit of the active subscriptions. Events a subscriber's
    filter does not want still use its credit (the bus cannot know before fetching them).
    """

    def __init__(self, bus: "BusBase", flt: EventFilter, handler: Handler,
                 credit: Callable[[], int] | None = None) -> None:
        self.bus = bus
        self.filter = flt
        self.handler = handler
        self.credit = credit
        self.active = True

    def cancel(self) -> None:
        self.active = False
        self.bus._unsubscribe(self)


class BusBase:
    """Publishing, pull with credit and dispatch shared by the buses (see the module docstring)."""

    durable = False
    #: the envelope field carrying the ref on delivered events
    ref_field = "seq"

    def __init__(self, max_inflight: int | None = 100_000) -> None:
        """``max_inflight``: publishers wait while this many published events are not fetched yet
        (None: never wait; the durable buses, whose log is the buffer)."""
        self._subs: list[Subscription] = []
        self._cv = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._max_inflight = max_inflight
        self._credit_waiting = False
        self._drained_upto = 0        # every event published before this count has been fetched
        self.published = 0
        self.fetched = 0
        self.acked = 0

    # ------------------------------------------------------------------ publishing
    def publish(self, event: dict[str, Any]) -> Any:
        """Publish one event; returns its ref once stored under the bus's guarantee."""
        return self.publish_many([event])[0]

    def publish_many(self, events: list[dict[str, Any]], *, wait: bool = True) -> Sequence[Any]:
        """Publish events in order; returns their refs once stored under the bus's guarantee.

        The envelope fields a bus sets on delivery (``seq``, ``bus_ref``) are removed from the events
        (in place: the bus owns published dicts). With a ``max_inflight`` bound, blocks while that many
        published events wait to be fetched, unless ``wait`` is false: the pipeline's own follow-up events
        must not wait for the dispatch thread, which may be waiting for them.
        """
        if not events:
            return []
        for ev in events:
            if "seq" in ev or "bus_ref" in ev:
                ev.pop("seq", None)
                ev.pop("bus_ref", None)
        limit = self._max_inflight
        with self._cv:
            if self._closed:
                raise BusClosedError("the bus is closed")
            if wait and limit is not None:
                while self.published - self.fetched >= limit and not self._closed:
                    self._cv.wait()
            if wait:
                self._admit(len(events))
        refs = self._store(events)
        with self._cv:
            self.published += len(events)
            self._cv.notify_all()
        return refs

    # ------------------------------------------------------------------ pulling
    def fetch(self, max_events: int, timeout: float | None = 0.0) -> tuple[Sequence[Any], list[dict[str, Any]]]:
        """Pull up to ``max_events`` events not handed out yet (see ``_fetch``); the consumer acks them."""
        if self._closed:
            raise BusClosedError("the bus is closed")
        if max_events <= 0:
            return [], []
        refs, events = self._fetch(max_events, timeout)
        if events:
            with self._cv:
                self.fetched += len(events)
                self._cv.notify_all()
        return refs, events

    def _wait_for_events(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """For ``_fetch`` implementations that wait on local publishes: wait until ``ready()`` (True) or the
        timeout or close (False). Publishing notifies."""
        with self._cv:
            return self._cv.wait_for(lambda: self._closed or ready(), timeout) and not self._closed

    def credit_available(self) -> None:
        """A consumer freed room: wake a dispatch thread waiting for credit (cheap when none waits)."""
        if self._credit_waiting:
            with self._cv:
                self._cv.notify_all()

    # ------------------------------------------------------------------ subscribing
    def subscribe(self, flt: EventFilter | None, handler: Handler,
                  credit: Callable[[], int] | None = None) -> Subscription:
        """Call ``handler(refs, events)`` on the dispatch thread for matching events; starts dispatch."""
        sub = Subscription(self, flt or EventFilter(), handler, credit)
        with self._cv:
            if self._closed:
                raise BusClosedError("the bus is closed")
            self._subs.append(sub)
            if self._thread is None:
                self._thread = threading.Thread(target=self._dispatch_loop, name=f"orgloop-bus-{type(self).__name__}",
                                                daemon=True)
                self._thread.start()
            self._cv.notify_all()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._cv:
            if sub in self._subs:
                self._subs.remove(sub)
            self._cv.notify_all()

    def _credit(self, subs: list[Subscription]) -> int:
        credit = FETCH_MAX
        for sub in subs:
            if sub.credit is not None:
                credit = min(credit, sub.credit())
        return credit

    def _dispatch_loop(self) -> None:
        while not self._closed:
            subs = [s for s in self._subs if s.active]
            credit = self._credit(subs) if subs else 0
            if credit <= 0:
                with self._cv:
                    self._credit_waiting = True
                    self._cv.notify_all()     # publishers waiting in _admit for a consumer that now waits
                    try:   # look again with the flag set: room freed meanwhile would not have notified
                        if not subs or self._credit(subs) <= 0:
                            self._cv.wait(CREDIT_POLL)
                    finally:
                        self._credit_waiting = False
                try:
                    self._idle()
                except Exception:  # keeping a session alive failed: the next round tries again
                    log.exception("bus %s: idle keep-alive failed", type(self).__name__)
                continue
            published = self.published
            try:
                refs, events = self.fetch(credit, CREDIT_POLL)
            except BusClosedError:
                return
            except Exception:  # a failing read must not end dispatch; try again shortly
                log.exception("bus %s: fetching events failed", type(self).__name__)
                with self._cv:
                    self._cv.wait(1.0)
                continue
            if events:   # subscriptions made while fetch waited get this batch too
                self._hand_over([s for s in self._subs if s.active], refs, events)
            else:
                with self._cv:
                    self._drained_upto = max(self._drained_upto, published)
                    self._cv.notify_all()

    def _hand_over(self, subs: list[Subscription], refs: Sequence[Any], events: list[dict[str, Any]]) -> None:
        for sub in subs:
            if not sub.active:
                continue
            if sub.filter.everything:
                r, e = refs, events
            else:
                picked = [i for i, ev in enumerate(events) if sub.filter.matches(ev)]
                if not picked:
                    continue
                r, e = [refs[i] for i in picked], [events[i] for i in picked]
            try:
                sub.handler(r, e)
            except Exception:  # a broken handler must not stop the bus; its events stay unacked
                log.exception("bus subscriber %r failed on a batch of %d events", sub.handler, len(e))

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every event published so far (and the unacked backlog) has been handed to subscribers."""
        with self._cv:
            target = self.published
            return self._cv.wait_for(lambda: self._drained_upto >= target or self._closed, timeout)

    # ------------------------------------------------------------------ acks
    def ack(self, ref: Any) -> None:
        self.ack_many((ref,))

    def ack_many(self, refs: Sequence[Any]) -> None:
        """Mark events fully handled (delivered or dead-lettered on every matching route)."""
        if refs:
            self._ack_many(refs)
            self.acked += len(refs)

    def unacked(self) -> Iterator[tuple[Sequence[Any], list[dict[str, Any]]]]:
        """Batches of events not yet acked, oldest first."""
        return self._unacked()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop dispatching (a batch being handed over is finished first) and release resources."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._cv.notify_all()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def delivery_count(self, ref: Any) -> int | None:
        """How many times the bus has handed out the entry ``ref`` (fetched, not acked yet), this time
        included: more than 1 for an entry taken over from a member that died or redelivered after a
        restart. ``None`` where the bus does not know (the default)."""
        return None

    def problems(self) -> list[str]:
        """What keeps the bus from working now (a lost server connection, a failed log); empty when well."""
        return []

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "fetched": self.fetched, "acked": self.acked,
                "inflight": self.fetched - self.acked}

    # ------------------------------------------------------------------ to implement
    def _store(self, events: list[dict[str, Any]]) -> Sequence[Any]:
        raise NotImplementedError

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[Any], list[dict[str, Any]]]:
        raise NotImplementedError

    def _ack_many(self, refs: Sequence[Any]) -> None:
        raise NotImplementedError

    def _unacked(self) -> Iterator[tuple[Sequence[Any], list[dict[str, Any]]]]:
        raise NotImplementedError

    def _admit(self, count: int) -> None:
        """Called with the bus lock held before a publish that may wait: a bus may wait here (on
        ``self._cv``) while the consumer is taking events, to keep its in-memory buffer bounded."""

    def _wake(self) -> None:
        pass

    def _idle(self) -> None:
        """Called on the dispatch thread about every ``CREDIT_POLL`` while consumers have no credit: a bus
        whose server drops consumers that stop polling (Kafka) keeps its session alive here."""

    def _close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
