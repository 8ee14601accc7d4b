"""The router: matches bus batches to routes, runs each route's transforms, and hands deliveries to
the actor lanes. It is the bus subscriber, so it runs on the bus's dispatch thread.

Matching goes through :class:`~orgloop.router.index.RouteIndex` on (source, event type), so its cost per
event does not grow with the number of routes; ``when.filter`` (strict dot-path equality) is checked only
on the candidates.
"""
from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any, Callable, Sequence

from orgloop.router.acks import AckTracker
from orgloop.router.index import RouteIndex
from orgloop.spec import RouteSpec
from orgloop.transforms import Transform, TransformContext, TransformError

__all__ = ["CompiledRoute", "Router", "get_path"]

log = logging.getLogger("orgloop.router")
_MISSING = object()


def get_path(event: dict[str, Any], path: str | tuple[str, ...]) -> Any:
    """The value at a dot-path (``payload.pr.number``), or a private MISSING marker."""
    cur: Any = event
    for part in (path.split(".") if isinstance(path, str) else path):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return _MISSING
    return cur


class CompiledRoute:
    """A route ready to run: filter pre-split, transforms instantiated, lane attached."""

    __slots__ = ("spec", "name", "filters", "transforms", "direct", "lane", "policy", "inbox", "dropped", "settle")

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
        hooks = [t.settle for _n, t, _p in transforms if hasattr(t, "settle")]
        # settle(seq, delivered): tells stateful transforms how this route finished with an event (None: none care)
        self.settle = partial(_settle, hooks, self.name) if hooks else None

    def accepts(self, event: dict[str, Any]) -> bool:
        for path, want in self.filters:
            if get_path(event, path) != want:
                return False
        return True


class Router:
    def __init__(self, routes: list[CompiledRoute], tracker: AckTracker,
                 emit: Callable[[list[dict[str, Any]]], None] | None = None) -> None:
        self.tracker = tracker
        self.emit = emit                  # log entries sink (None = no loggers configured)
        self.index: RouteIndex[CompiledRoute] = RouteIndex()
        self.routes: dict[str, CompiledRoute] = {}
        self.lanes: list[Any] = []
        for r in routes:
            self.add(r)
        self.index.warm()
        self.events_in = 0
        self.unmatched = 0
        self.tap: Any = None              # orgloop.control.tap.TapHub: offered each batch while anyone taps

    def add(self, route: CompiledRoute) -> None:
        self.routes[route.name] = route
        self.index.add(route.name, route.spec.source, route.spec.events or None, route)
        if route.lane is not None and route.lane not in self.lanes:
            self.lanes.append(route.lane)

    def remove(self, name: str) -> CompiledRoute | None:
        route = self.routes.pop(name, None)
        if route is not None:
            self.index.remove(name)
        return route

    def match(self, event: dict[str, Any]) -> list[CompiledRoute]:
        candidates = self.index.match(event.get("source", ""), event.get("type", ""))
        return [r for r in candidates if not r.filters or r.accepts(event)]

    def handle(self, seqs: Sequence[int], events: list[dict[str, Any]]) -> None:
        """Bus handler: route a batch. Each lane receives its share in one ``put_many``."""
        tracker = self.tracker
        match = self.index.match
        finished: list[int] = []
        entries: list[dict[str, Any]] | None = [] if self.emit else None
        self.events_in += len(events)
        direct_ok = entries is None                   # log entries take the full path
        for seq, event in zip(seqs, events):
            routes: Sequence[CompiledRoute] = match(event.get("source", ""), event.get("type", ""))
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
                out = self.apply_transforms(route, seq, event, entries) if route.transforms else (event,)
                if not out:
                    route.dropped += 1
                    finished.append(seq)
                    if route.settle is not None:      # dropped by a transform: finished, as if delivered
                        route.settle(seq, True)
                    continue
                if len(out) > 1:
                    tracker.add(seq, len(out) - 1)
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

    def apply_transforms(self, route: CompiledRoute, seq: int, event: dict[str, Any],
                         entries: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Run the route's transforms in order; [] means dropped (or halted)."""
        current = [event]
        ctx = TransformContext(route=route.name, source=event.get("source", ""), target=route.spec.actor, seq=seq)
        for name, transform, on_error in route.transforms:
            nxt: list[dict[str, Any]] = []
            for ev in current:
                if entries is not None:
                    entries.append(_entry("transform.start", ev, route=route.name, target=route.spec.actor,
                                          transform=name))
                t0 = time.perf_counter()
                try:
                    result = transform.apply(ev, ctx)
                except TransformError as exc:
                    phase = {"pass": "transform.error", "drop": "transform.error_drop",
                             "halt": "transform.error_halt"}[on_error]
                    if entries is not None:
                        entries.append(_entry(phase, ev, route=route.name, target=route.spec.actor, transform=name,
                                              error=str(exc), result=on_error,
                                              duration_ms=(time.perf_counter() - t0) * 1000))
                    else:
                        log.warning("transform %s on route %s failed (%s): %s", name, route.name, on_error, exc)
                    if on_error == "pass":
                        nxt.append(ev)
                    continue
                if entries is not None:
                    entries.append(_entry("transform.pass" if result else "transform.drop", ev, route=route.name,
                                          target=route.spec.actor, transform=name,
                                          result="pass" if result else "drop",
                                          duration_ms=(time.perf_counter() - t0) * 1000,
                                          metadata={"events_out": len(result)}))
                nxt.extend(result)
            current = nxt
            if not current:
                break
        return current


def _settle(hooks: list[Callable[[str, int, bool], None]], route: str, seq: int, delivered: bool) -> None:
    for hook in hooks:
        hook(route, seq, delivered)


def _entry(phase: str, event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"phase": phase, "event_id": event.get("id"), "trace_id": event.get("trace_id"),
            "source": event.get("source"), "event_type": event.get("type"), **fields}
