"""The router: matches bus batches to routes, runs each route's transforms, and hands deliveries to
the actor lanes. It is the bus subscriber, so it runs on the bus's dispatch thread.

A route with a transform that may block (one whose class sets ``blocking = True``: the ``script``
transform runs a program) runs its transforms on a thread of its own (:class:`_RouteWorker`), so a slow
or hanging script holds only its own route: the dispatch thread hands the event over and moves on. The
hand-over queue is bounded (``OFFLOAD_DEPTH``) and its free room counts in the router's credit, so a
script that cannot keep up leaves events unacked in the bus, as a slow actor does.

Matching goes through :class:`~orgloop.router.index.RouteIndex` on (source, event type), so its cost per
event does not grow with the number of routes; ``when.filter`` (strict dot-path equality) is checked only
on the candidates.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any, Callable, Sequence

from orgloop.bus.base import FETCH_MAX
from orgloop.delivery.dlq import REDELIVER_TYPE, dead_letter
from orgloop.delivery.restart import RestartBackoff
from orgloop.event import get_path
from orgloop.router.acks import AckTracker
from orgloop.router.index import RouteIndex
from orgloop.spec import RouteSpec
from orgloop.transforms import Transform, TransformContext, TransformError

__all__ = ["CompiledRoute", "Router", "OFFLOAD_DEPTH"]

log = logging.getLogger("orgloop.router")
OFFLOAD_DEPTH = 1000     # events a route with blocking transforms holds before they run


class _RouteHot:
    """The fields of a :class:`CompiledRoute` read per event: ``direct`` and ``inbox`` by the router,
    ``policy`` and ``settle`` by the lane. In a base class, so that they come right after the object's
    header (CPython lays out a class's own slots in name order, after its base's): with 10,000 routes a
    route is rarely in cache, and one memory fetch then serves each side.
    """

    __slots__ = ("direct", "inbox", "policy", "settle")


class CompiledRoute(_RouteHot):
    """A route ready to run: filter pre-split, transforms instantiated, lane attached."""

    # Twelve slots in all: 16 + 12 x 8 bytes plus the GC header make 128, a size class whose objects start
    # on a 64-byte line.
    __slots__ = ("spec", "name", "filters", "transforms", "lane", "dropped", "pending", "worker")

    def __init__(self, spec: RouteSpec, transforms: list[tuple[str, Transform, str]], lane: Any,
                 policy: Any = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.filters = [(tuple(k.split(".")), v) for k, v in spec.filter.items()]
        self.transforms = transforms     # (name, instance, on_error)
        # No filter and no transforms: the router hands events straight to the lane. One flag, so that the
        # per-event check does not touch two more objects (which with 10,000 routes are rarely in cache).
        self.direct = not self.filters and not transforms
        self.lane = lane
        self.policy = policy             # the lane's RoutePolicy for this route
        # the router fills the lane's inbox, then flushes it per batch (a dry run has no lane, and no inbox)
        self.inbox: list[tuple[int, dict[str, Any], CompiledRoute]] = lane.inbox if lane is not None else []
        self.dropped = 0
        # Claims of stateful transforms carried by deliveries in flight, by id() of the delivered event (the
        # lane holds the event until it settles it, so the id is not reused meanwhile).
        self.pending: dict[int, tuple[_Claim, ...]] = {}
        # settle(seq, delivered, event): the lane reports how the route finished with one delivery (None: no
        # transforms, so nothing can care)
        self.settle: Callable[[Any, bool, dict[str, Any]], None] | None = self._settle if transforms else None
        # set by the router when a transform may block: the route's transforms then run on its own thread
        self.worker: _RouteWorker | None = None

    def _settle(self, seq: Any, delivered: bool, event: dict[str, Any]) -> None:
        claims = self.pending.pop(id(event), None)
        if claims:
            for claim in claims:
                claim.finish(delivered)

    def accepts(self, event: dict[str, Any]) -> bool:
        for path, want in self.filters:
            if get_path(event, path) != want:
                return False
        return True


class Router:
    """Routes bus batches: matching, transforms, fan-out; hands deliveries to the lanes' inboxes.

    ``dead_letter`` stores delivery records the router itself gives up on (a replayed dead letter whose
    route no longer exists).
    """

    def __init__(self, routes: list[CompiledRoute], tracker: AckTracker,
                 emit: Callable[[list[dict[str, Any]]], None] | None = None,
                 dead_letter: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.tracker = tracker
        self.emit = emit                  # log entries sink (None = no loggers configured)
        self.dead_letter = dead_letter
        self.index: RouteIndex[CompiledRoute] = RouteIndex()
        self.routes: dict[str, CompiledRoute] = {}
        self.lanes: list[Any] = []
        self.workers: list[_RouteWorker] = []    # the threads of routes whose transforms may block
        self.bus_credit: Callable[[], None] | None = None   # the bus's credit_available (set by the runtime)
        for r in routes:
            self.add(r)
        self.events_in = 0
        self.unmatched = 0
        self.redelivered = 0
        self.tap: Any = None              # orgloop.control.tap.TapHub: offered each batch while anyone taps

    def add(self, route: CompiledRoute) -> None:
        if route.lane is not None and any(getattr(t, "blocking", False) for _n, t, _e in route.transforms):
            route.worker = _RouteWorker(self, route)
            self.workers.append(route.worker)
        self.routes[route.name] = route
        self.index.add(route.name, route.spec.source, route.spec.events or None, route)
        if route.lane is not None and route.lane not in self.lanes:
            self.lanes.append(route.lane)

    def remove(self, name: str) -> CompiledRoute | None:
        route = self.routes.pop(name, None)
        if route is not None:
            self.index.remove(name)
            if route.worker is not None:
                self.workers.remove(route.worker)
                route.worker.stop()
        return route

    def close(self, timeout: float = 1.0) -> None:
        """Stop the routes' transform threads (what they have not run stays unacked in the bus)."""
        for route in list(self.routes.values()):
            if route.worker is not None:
                route.worker.stop(timeout)

    def credit(self) -> int:
        """How many events the bus may hand over now: the least free room of the lanes that block."""
        credit = FETCH_MAX
        for lane in self.lanes:
            room = lane.credit()
            if room is not None and room < credit:
                credit = room
        for worker in self.workers:
            room = worker.room()
            if room < credit:
                credit = room
        return credit

    def match(self, event: dict[str, Any]) -> list[CompiledRoute]:
        candidates = self.index.match(event.get("source", ""), event.get("type", ""))
        return [r for r in candidates if not r.filters or r.accepts(event)]

    def handle(self, seqs: Sequence[Any], events: list[dict[str, Any]]) -> None:
        """Bus handler: route a batch. Each lane receives its share in one ``put_many``."""
        tracker = self.tracker
        match = self.index.match
        finished: list[Any] = []
        entries: list[dict[str, Any]] | None = [] if self.emit else None
        self.events_in += len(events)
        direct_ok = entries is None                   # log entries take the full path
        for seq, event in zip(seqs, events):
            etype = event.get("type", "")
            if etype == REDELIVER_TYPE:
                if self._redeliver(seq, event):
                    finished.append(seq)
                continue
            routes: Sequence[CompiledRoute] = match(event.get("source", ""), etype)
            if direct_ok and len(routes) == 1:        # the common case: one route, no filter, no transforms
                route = routes[0]
                if route.direct:
                    route.inbox.append((seq, event, route))
                    continue
            if routes:
                routes = [r for r in routes if not r.filters or r.accepts(event)]
            if not routes:
                self.unmatched += 1
                finished.append(seq)
                if entries is not None:
                    entries.append(_entry("route.no_match", event))
                continue
            if len(routes) > 1:
                tracker.expect(seq, len(routes))
            for route in routes:
                if entries is not None:
                    entries.append(_entry("route.match", event, route=route.name, target=route.spec.actor))
                if route.worker is not None:          # its transforms may block: they run on its own thread
                    route.worker.submit(seq, event)
                    continue
                try:
                    out = self.apply_transforms(route, seq, event, entries) if route.transforms else [event]
                except _Unfinished:                   # halted, and the lane stopped before its dead letter
                    continue                          # was written: the event stays unacked
                if not self.count_out(route, seq, out, finished):
                    continue
                inbox = route.inbox
                for ev in out:
                    inbox.append((seq, ev, route))
        tap = self.tap
        if tap is not None and tap.subscribers:     # one test per batch; nothing per event while nobody taps
            for lane in self.lanes:
                if lane.inbox:
                    tap.offer(lane.inbox)
        for lane in self.lanes:
            if lane.inbox:
                lane.flush_inbox()
        if finished:
            tracker.done_many(finished)
        if entries and self.emit is not None:
            self.emit(entries)

    def count_out(self, route: CompiledRoute, seq: Any, out: list[dict[str, Any]], finished: list[Any]) -> bool:
        """The bookkeeping for what a route's transforms made of one event: nothing (dropped: the route is
        finished with it, ``seq`` goes to ``finished``) or several copies (each one more delivery for the
        tracker to wait for). True when there is something to hand to the lane."""
        if not out:
            route.dropped += 1
            finished.append(seq)
            return False
        if len(out) > 1:
            self.tracker.add(seq, len(out) - 1)
        return True

    def supervise(self) -> None:
        """Restart routes' transform threads that died (called regularly by the runtime)."""
        now = time.monotonic()
        for worker in list(self.workers):
            worker.supervise(now)

    def problems(self) -> list[str]:
        """Routes whose transform thread died and is not restarted yet."""
        return [p for p in (w.problem() for w in list(self.workers)) if p is not None]

    def _redeliver(self, seq: Any, record: dict[str, Any]) -> bool:
        """A replayed dead letter: hand its event to its route's lane as it is (no matching, no transforms).
        True when the router is finished with it here (its route is gone: dead-lettered again)."""
        payload = record.get("payload") or {}
        name, event = payload.get("route"), payload.get("event")
        route = self.routes.get(name) if isinstance(name, str) else None
        if route is not None and route.lane is not None and isinstance(event, dict):
            event["seq"] = seq
            self.redelivered += 1
            route.inbox.append((seq, event, route))
            return False
        log.warning("replayed dead letter %s: route %r does not exist (any more); dead-lettered again",
                    record.get("id"), name)
        if self.dead_letter is not None:
            try:
                self.dead_letter([dead_letter(event if isinstance(event, dict) else record, route=str(name),
                                              actor=str(payload.get("actor")), reason="gave_up",
                                              error=f"route {name!r} does not exist")])
            except Exception as exc:   # the store fails: keep it unacked (tried again after a restart)
                log.error("replayed dead letter %s cannot be dead-lettered again (%s); it stays unacked",
                          record.get("id"), exc)
                return False
        return True

    def apply_transforms(self, route: CompiledRoute, seq: Any, event: dict[str, Any],
                         entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Run the route's transforms in order; [] means dropped or halted (a halt records a dead letter
        with reason ``halted``). With a seq (not 0), claims of stateful transforms follow each output (see
        :mod:`orgloop.transforms`) and are settled when the lane reports the delivery."""
        track = seq != 0
        made: list[_Claim] = []
        current: list[tuple[dict[str, Any], tuple[_Claim, ...]]] = [(event, ())]
        source, target = event.get("source", ""), route.spec.actor
        for name, transform, on_error in route.transforms:
            nxt: list[tuple[dict[str, Any], tuple[_Claim, ...]]] = []
            for ev, lineage in current:
                if entries is not None:
                    entries.append(_entry("transform.start", ev, route=route.name, target=target, transform=name))
                claims: list[Callable[[bool, Callable[[], None]], None]] | None = [] if track else None
                ctx = TransformContext(route=route.name, source=source, target=target, seq=seq, claims=claims)
                t0 = time.perf_counter()
                try:
                    result = transform.apply(ev, ctx)
                except TransformError as exc:
                    phase = {"pass": "transform.error", "drop": "transform.error_drop",
                             "halt": "transform.error_halt"}[on_error]
                    if entries is not None:
                        entries.append(_entry(phase, ev, route=route.name, target=target, transform=name,
                                              error=str(exc), result=on_error,
                                              duration_ms=(time.perf_counter() - t0) * 1000))
                    else:
                        log.warning("transform %s on route %s failed (%s): %s", name, route.name, on_error, exc)
                    if on_error == "pass":
                        nxt.append((ev, lineage))
                    elif on_error == "halt":
                        for claim in made:            # nothing of this event reaches the actor on this route
                            claim.settle(False)
                        if route.lane is not None and not route.lane.halt(seq, ev, route, name, str(exc)):
                            raise _Unfinished()
                        return []
                    continue
                if entries is not None:
                    entries.append(_entry("transform.pass" if result else "transform.drop", ev, route=route.name,
                                          target=target, transform=name,
                                          result="pass" if result else "drop",
                                          duration_ms=(time.perf_counter() - t0) * 1000,
                                          metadata={"events_out": len(result)}))
                if claims:
                    # the event is acked only once each claim's outcome is durable: one more delivery to wait for
                    self.tracker.add(seq, len(claims))
                    release = partial(self.tracker.done_many, (seq,))
                    new = tuple(_Claim(c, release) for c in claims)
                    made.extend(new)
                    lineage = lineage + new
                nxt.extend((r, lineage) for r in result)
            current = nxt
            if not current:
                break
        if made:
            pending = route.pending
            for ev, lineage in current:
                if lineage:
                    for claim in lineage:
                        claim.copies += 1
                    pending[id(ev)] = lineage
            for claim in made:
                if claim.copies == 0:                 # every copy dropped by a later transform: finished
                    claim.settle(True)
        return [ev for ev, _l in current]


class _RouteWorker:
    """Runs one route's transforms on a thread of its own and hands the results to the route's lane.

    A thread that dies (a transform raised something that is not an ``Exception``) puts back what it had not
    finished, is reported by :meth:`problem` and restarted by :meth:`supervise`, as the lanes' workers are.
    """

    def __init__(self, router: Router, route: CompiledRoute, depth: int = OFFLOAD_DEPTH,
                 restart_delay: float = 1.0) -> None:
        self.router = router
        self.route = route
        self.depth = depth
        self._items: list[tuple[Any, dict[str, Any]]] = []
        self._cv = threading.Condition()
        self._stopping = False
        self._restarts = RestartBackoff(restart_delay)
        self._died_at: float | None = None
        self._death_cause = "unknown cause"
        self._thread = self._spawn()

    def _spawn(self) -> threading.Thread:
        t = threading.Thread(target=self._run, name=f"orgloop-transforms-{self.route.name}", daemon=True)
        t.start()
        return t

    def room(self) -> int:
        return self.depth - len(self._items)

    def submit(self, seq: Any, event: dict[str, Any]) -> None:
        with self._cv:
            self._items.append((seq, event))
            self._cv.notify()

    def stop(self, timeout: float = 1.0) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)

    def supervise(self, now: float) -> None:
        """Restart the thread if it died, ``restart_delay`` seconds after its death (doubling while restarted
        threads keep dying, up to 30 s)."""
        if self._stopping or self._thread.is_alive():
            return
        if self._died_at is None:
            self._died_at = now
            log.error("route %s: its transform thread died (%s); restarting it in %.1fs", self.route.name,
                      self._death_cause, self._restarts.delay)
        elif now - self._died_at >= self._restarts.delay:
            self._died_at = None
            self._restarts.restarted(now)
            self._thread = self._spawn()

    def problem(self) -> str | None:
        """Why this route is not healthy now: its thread died and is not restarted yet."""
        if self._stopping or self._thread.is_alive():
            return None
        return f"route {self.route.name}: transform thread died ({self._death_cause}), restarting"

    def _run(self) -> None:
        router, route = self.router, self.route
        tracker = router.tracker
        items: list[tuple[Any, dict[str, Any]]] = []
        finished: list[Any] = []
        i = 0
        try:
            while True:
                with self._cv:
                    self._cv.wait_for(lambda: self._items or self._stopping)
                    if self._stopping:
                        return               # what is left stays unacked in the bus
                    items, self._items = self._items, []
                    i = 0
                entries: list[dict[str, Any]] | None = [] if router.emit else None
                for i, (seq, event) in enumerate(items):
                    if self._stopping:
                        return
                    try:
                        out = router.apply_transforms(route, seq, event, entries)
                    except _Unfinished:
                        continue
                    except Exception:  # a transform bug must not end the thread; the event stays unacked
                        log.exception("route %s: transforms failed on event %s", route.name, event.get("id"))
                        continue
                    if self._stopping:
                        return               # ended at shutdown (its script was killed): leave it unacked
                    if not router.count_out(route, seq, out, finished):
                        continue
                    handed = [(seq, ev, route) for ev in out]
                    tap = router.tap
                    if tap is not None and tap.subscribers:    # orgloop tap sees these routes too
                        tap.offer(handed)
                    route.lane.put_many(handed)
                i = len(items)
                if router.bus_credit is not None:
                    router.bus_credit()       # room again: a dispatch thread waiting for credit may go on
                if finished:
                    done, finished = finished, []
                    tracker.done_many(done)
                if entries and router.emit is not None:
                    router.emit(entries)
        except BaseException as exc:
            # This thread dies; supervise() restarts it, and the next one runs what this one had not finished.
            self._death_cause = f"{type(exc).__name__}: {exc}"
            if not self._stopping:
                with self._cv:
                    self._items = items[i:] + self._items
                if finished:
                    tracker.done_many(finished)
            raise


class _Unfinished(Exception):
    """The route could not finish with the event (its lane is stopping): leave it unacked."""


class _Claim:
    """One claim of a stateful transform, followed through the rest of the route: settled once, when every
    delivery that came out of the claiming event is finished (delivered only if all were)."""

    __slots__ = ("claim", "durable", "copies", "ok")
    _lock = threading.Lock()      # copies of one event may finish on several workers of a lane

    def __init__(self, claim: Callable[[bool, Callable[[], None]], None], durable: Callable[[], None]) -> None:
        self.claim = claim
        self.durable = durable    # releases the ack hold the router took for this claim
        self.copies = 0
        self.ok = True

    def finish(self, delivered: bool) -> None:
        with self._lock:
            self.ok = self.ok and delivered
            self.copies -= 1
            last = self.copies == 0
        if last:
            self.settle(self.ok)

    def settle(self, delivered: bool) -> None:
        self.claim(delivered, self.durable)


def _entry(phase: str, event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"phase": phase, "event_id": event.get("id"), "trace_id": event.get("trace_id"),
            "source": event.get("source"), "event_type": event.get("type"), **fields}
