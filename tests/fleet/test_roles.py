"""The seam between routers and delivery members: delivery records, and when a router acks."""
from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from support.pipeline import wait_until

from orgloop.fleet.roles import RECORD_TYPE, DeliveryIntake, ForwardLane
from orgloop.router.acks import AckTracker


def _route(name: str, lane: Any = None) -> Any:
    settled: list[tuple[Any, bool]] = []
    return SimpleNamespace(name=name, lane=lane, inbox=lane.inbox if lane else [], settled=settled,
                           settle=lambda ref, ok, ev: settled.append((ref, ok)))


def test_a_router_acks_a_source_event_only_once_its_delivery_records_are_durable():
    acked: list[Any] = []
    published: list[list[dict[str, Any]]] = []
    fail = threading.Event()
    fail.set()
    stopping = threading.Event()

    def publish(records: list[dict[str, Any]]) -> None:
        if fail.is_set():
            raise ConnectionError("server unreachable")
        published.append(records)

    tracker = AckTracker(acked.extend)
    lane = ForwardLane("sink", publish, tracker, lambda entries: None, stopping.is_set)
    route = _route("r")
    event = {"id": "evt_1", "source": "gen", "type": "t", "bus_ref": "0001-0001", "payload": {"n": 1}}
    split = {"id": "evt_1", "source": "gen", "type": "t", "payload": {"n": 2}}
    tracker.add("0001-0001", 1)                   # a transform split the event in two
    worker = threading.Thread(target=lane.put_many, args=([("0001-0001", event, route), ("0001-0001", split, route)],))
    worker.start()
    assert not wait_until(lambda: bool(acked), timeout=0.5)     # the publish keeps failing: nothing acked
    fail.clear()
    worker.join(30)
    assert acked == ["0001-0001"] and route.settled == [("0001-0001", True), ("0001-0001", True)]
    (records,) = published
    assert [r["id"] for r in records] == ["evt_1:r:0", "evt_1:r:1"]
    assert records[0] == {"id": "evt_1:r:0", "source": "gen", "type": RECORD_TYPE, "route": "r", "actor": "sink",
                          "event": {"id": "evt_1", "source": "gen", "type": "t", "payload": {"n": 1}}, "attempts": 0}


def test_a_router_that_stops_while_the_server_is_unreachable_leaves_the_event_unacked():
    acked: list[Any] = []

    def publish(records: list[dict[str, Any]]) -> None:
        raise ConnectionError("server unreachable")

    lane = ForwardLane("sink", publish, AckTracker(acked.extend), lambda entries: None, lambda: True)
    lane.put_many([("0001-0002", {"id": "evt_2"}, _route("r"))])
    assert acked == []


def test_a_delivery_member_hands_records_to_their_lanes_and_dead_letters_unknown_routes():
    acked: list[Any] = []
    dead: list[dict[str, Any]] = []
    queued: list[Any] = []
    lane = SimpleNamespace(inbox=[], flush_inbox=lambda: (queued.extend(lane.inbox), lane.inbox.clear()))
    route = _route("r", lane)
    intake = DeliveryIntake({"r": route}, AckTracker(acked.extend), dead.extend)
    intake.handle(["ref-1", "ref-2"], [{"route": "r", "actor": "sink", "event": {"id": "evt_1"}, "attempts": 0},
                                       {"route": "gone", "actor": "sink", "event": {"id": "evt_2"}, "attempts": 0}])
    assert queued == [("ref-1", {"id": "evt_1", "bus_ref": "ref-1"}, route)]   # acked by the lane when delivered
    assert acked == ["ref-2"] and dead[0]["route"] == "gone" and dead[0]["reason"] == "gave_up"


def test_a_delivery_member_counts_the_earlier_deliveries_of_a_record_it_took_over():
    dead: list[dict[str, Any]] = []
    lane = SimpleNamespace(inbox=[], flush_inbox=lambda: lane.inbox.clear())
    counts = {"ref-1": 1, "ref-2": 3, "ref-3": 2}             # what the bus says (None: it does not know)
    intake = DeliveryIntake({"r": _route("r", lane)}, AckTracker(lambda refs: None), dead.extend, counts.get)
    records = [{"route": "r", "actor": "sink", "event": {"id": f"evt_{i}"}, "attempts": 0} for i in range(4)]
    records[2]["route"] = "gone"
    intake.handle(["ref-1", "ref-2", "ref-3", "ref-4"], records)
    assert [r["attempts"] for r in records] == [0, 2, 1, 0] and intake.redelivered == 2
    assert dead[0]["attempts"] == 1
