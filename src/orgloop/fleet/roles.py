"""The seams of a role-split fleet: routers hand delivery records to the delivery role through the bus.

A delivery record is ``{route, actor, event, attempts}`` with the event as the route's actor would receive
it (after the route's transforms), the same shape as a dead letter (decisions.md "Dead letters and halt").
On the bus it is an envelope of its own: ``id`` ``<event id>:<route>:<n>`` (so a router that publishes it
again after a crash is deduplicated where the bus does that), ``source`` the event's source (the partition
key, so per-key order holds where the bus promises it) and ``type`` :data:`RECORD_TYPE`.

:class:`ForwardLane` stands in for an actor lane in a router: it publishes the records of each batch on
the ``deliveries`` stream and reports the source events finished only after that publish returned, i.e.
once the records are durable. :class:`DeliveryIntake` is the delivery role's bus handler: it hands each
record's event to its route's actor lane; the lane acks the record after delivery or dead letter.

A record's ``attempts`` counts the deliveries of it begun before this one: a router publishes 0, and the
delivery member that takes the record sets it from the bus (:meth:`BusBase.delivery_count` less one), so a
record taken over from a member that died, or redelivered after a restart, says how often it was handed
out before. A bus that does not count deliveries (Kafka) leaves it as published.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Sequence

from orgloop.delivery.dlq import dead_letter
from orgloop.router.acks import AckTracker

__all__ = ["ForwardLane", "DeliveryIntake", "delivery_record", "RECORD_TYPE"]

log = logging.getLogger("orgloop.fleet")
RECORD_TYPE = "orgloop.delivery"
_RETRY_MAX = 5.0


def delivery_record(route: str, actor: str, event: dict[str, Any], n: int, attempts: int = 0) -> dict[str, Any]:
    """The record of one delivery of ``event`` (already transformed) on ``route``; ``n`` numbers the
    outputs of one source event on one route (a transform may split it)."""
    inner = {k: v for k, v in event.items() if k not in ("seq", "bus_ref")}
    return {"id": f"{event.get('id', '')}:{route}:{n}", "source": event.get("source", ""), "type": RECORD_TYPE,
            "route": route, "actor": actor, "event": inner, "attempts": attempts}


class ForwardLane:
    """The lane of one actor in a router: what the router queues for it becomes delivery records."""

    def __init__(self, actor_id: str, publish: Callable[[list[dict[str, Any]]], Any], tracker: AckTracker,
                 dead_letter: Callable[[list[dict[str, Any]]], None],
                 stopping: Callable[[], bool]) -> None:
        self.actor_id = actor_id
        self.publish = publish
        self.tracker = tracker
        self.dead_letter = dead_letter
        self.stopping = stopping
        self.inbox: list[tuple[Any, dict[str, Any], Any]] = []
        self.queue: list[Any] = []           # nothing waits here: records go straight to the bus
        self.forwarded = 0
        self._lock = threading.Lock()

    def policy_for(self, route: str, *_args: Any) -> None:
        """No delivery policy here: rate limits, retries and breakers apply in the delivery members."""
        return None

    def credit(self) -> int | None:
        return None            # the deliveries stream is the buffer

    def flush_inbox(self) -> None:
        items = self.inbox[:]
        self.inbox.clear()
        self.put_many(items)

    def put_many(self, items: list[tuple[Any, dict[str, Any], Any]]) -> None:
        """Publish the records of ``items`` (``(ref, event, route)``), then settle and finish them. A publish
        that keeps failing is retried until the runtime stops; the events then stay unacked."""
        if not items:
            return
        counts: dict[tuple[Any, str], int] = {}
        records = []
        for ref, event, route in items:
            n = counts[(ref, route.name)] = counts.get((ref, route.name), -1) + 1
            records.append(delivery_record(route.name, self.actor_id, event, n))
        delay = 0.1
        with self._lock:                      # a route's transform thread may forward at the same time
            while True:
                try:
                    self.publish(records)
                    break
                except Exception as exc:
                    if self.stopping():
                        return
                    log.warning("router: handing %d delivery records to the bus failed, retrying: %s",
                                len(records), exc)
                    threading.Event().wait(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        self.forwarded += len(records)
        for ref, event, route in items:
            if route.settle is not None:
                route.settle(ref, True, event)
        self.tracker.done_many([ref for ref, _e, _r in items])

    def halt(self, seq: Any, event: dict[str, Any], route: Any, transform: str, error: str) -> bool:
        """A transform with ``on_error: halt`` failed: a dead letter (reason ``halted``) in this member."""
        self.dead_letter([dead_letter(event, route=route.name, actor=self.actor_id, reason="halted",
                                      error=f"transform {transform}: {error}")])
        return True

    def stats(self) -> dict[str, Any]:
        return {"actor": self.actor_id, "forwarded": self.forwarded, "queue_depth": 0, "routes": {}}


class DeliveryIntake:
    """The delivery role's bus handler: each record's event goes to its route's lane as it is (the router
    ran the transforms); a record whose route this member does not have is dead-lettered."""

    def __init__(self, routes: dict[str, Any], tracker: AckTracker,
                 dead_letter: Callable[[list[dict[str, Any]]], None],
                 delivery_count: Callable[[Any], int | None] = lambda ref: None) -> None:
        self.routes = routes          # the router's routes by name (a reconcile changes them in place)
        self.tracker = tracker
        self.dead_letter = dead_letter
        self.delivery_count = delivery_count    # the bus's count of a fetched record's deliveries
        self.records_in = 0
        self.redelivered = 0

    def handle(self, refs: Sequence[Any], records: list[dict[str, Any]]) -> None:
        lanes = []
        finished = []
        self.records_in += len(records)
        for ref, record in zip(refs, records):
            count = self.delivery_count(ref)
            if count is not None and count > 1:
                record["attempts"] = max(int(record.get("attempts") or 0), count - 1)
                self.redelivered += 1
                log.info("delivery record %s: delivery %d (taken over or redelivered)", record.get("id"), count)
            route = self.routes.get(str(record.get("route")))
            event = record.get("event")
            if route is None or route.lane is None or not isinstance(event, dict):
                log.warning("delivery record %s: route %r does not exist here; dead-lettered", record.get("id"),
                            record.get("route"))
                self.dead_letter([dead_letter(event if isinstance(event, dict) else record,
                                              route=str(record.get("route")), actor=str(record.get("actor")),
                                              reason="gave_up", error="no such route in this member",
                                              attempts=int(record.get("attempts") or 0))])
                finished.append(ref)
                continue
            event["bus_ref"] = ref
            route.inbox.append((ref, event, route))
            if route.lane not in lanes:
                lanes.append(route.lane)
        for lane in lanes:
            lane.flush_inbox()
        if finished:
            self.tracker.done_many(finished)
