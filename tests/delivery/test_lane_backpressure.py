"""``pipeline.backpressure`` reporting of an actor lane: per route, with counts, at most once a second, and
nothing left unreported (a hand-moved clock; the lane's workers are not started)."""
from orgloop.delivery.lane import ActorLane
from orgloop.event import new_event
from orgloop.router.acks import AckTracker
from orgloop.router.router import CompiledRoute
from orgloop.spec import DeliverySpec, RouteSpec


def _lane(clock):
    entries, dead, acked = [], [], []
    lane = ActorLane("agent", None, depth=2, policy="drop_oldest", concurrency=1,
                     tracker=AckTracker(acked.extend), dead_letter=dead.extend, emit=entries.extend,
                     clock=clock)
    routes = {}
    for name in ("r1", "r2"):
        spec = RouteSpec(name, "src", "agent", delivery=DeliverySpec(queue_depth=2))
        routes[name] = CompiledRoute(spec, [], lane, lane.policy_for(name, spec.delivery, {}, None))
    return lane, routes, entries, dead, acked


def _items(route, seqs):
    return [(s, new_event("src", "resource.changed", {"n": s}), route) for s in seqs]


def _reports(entries):
    return [(e["route"], e["target"], e["metadata"]["count"]) for e in entries if e["phase"] == "pipeline.backpressure"]


def test_drops_are_reported_per_route_rate_limited_and_never_lost(clock):
    lane, routes, entries, dead, acked = _lane(clock)
    lane.put_many(_items(routes["r1"], range(1, 6)))              # 5 into a queue of 2: 3 pushed out
    assert _reports(entries) == [("r1", "agent", 3)]              # the first drop is reported at once
    lane.put_many(_items(routes["r2"], range(6, 9)))              # 3 more pushed out (2 of r1, 1 of r2)
    clock.advance(0.5)
    lane.report_backpressure()
    assert len(_reports(entries)) == 1                            # within the second: held back
    clock.advance(0.5)
    lane.report_backpressure()                                    # due: reported without a further drop
    assert _reports(entries)[1:] == [("r1", "agent", 2), ("r2", "agent", 1)]
    lane.put_many(_items(routes["r1"], [9]))
    lane.stop(timeout=0)                                          # stopping reports what is left
    reports = _reports(entries)
    assert reports[3:] == [("r2", "agent", 1)]
    assert sum(n for _r, _a, n in reports) == lane.dropped == len(dead) == 7
    assert {d["reason"] for d in dead} == {"backpressure"} and sorted(acked) == list(range(1, 8))
    assert all(e["queue_depth"] == 2 and e["result"] == "dropped" for e in entries)
