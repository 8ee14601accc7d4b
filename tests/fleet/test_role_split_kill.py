"""A role-split fleet (source, two routers, two delivery members) on Redis loses one router and one
delivery member to SIGKILL mid-stream: the survivors finish the killed members' unacked work
(``XAUTOCLAIM`` after ``claim_idle``, 2 s here), no event is lost, and every duplicate the fleet-wide dedup
lets through is one a killed member held unacked when it died.

What a member holds is read from the server the moment it is frozen (SIGSTOP, then SIGKILL): its pending
entries in the consumer group, which stay its own for ``claim_idle`` since its heartbeat stopped."""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

import msgpack
import redis

from orgloop.fleet import open_store

from .conftest import REDIS_URL
from .members import Fleet, Member, make_fleet, number, wait_for

COUNT = 400


def _consumer(store: Any, member: Member) -> str:
    """The member id ``member`` registered (its consumer name in the Redis consumer groups)."""
    return next(m["member"] for m in store.members() if m["pid"] == member.proc.pid)


def _held(r: redis.Redis, stream: str, group: str, consumer: str) -> list[dict[str, Any]]:
    """The envelopes ``consumer`` has fetched from ``stream`` and not acked."""
    pending = r.xpending_range(stream, group, "-", "+", 10_000, consumername=consumer)
    held = []
    for p in pending:
        entries = r.xrange(stream, p["message_id"], p["message_id"])
        held += [msgpack.unpackb(fields[b"e"]) for _id, fields in entries]
    return held


def _kill(fleet: Fleet, member: Member, store: Any, r: redis.Redis, stream: str, group: str) -> list[dict[str, Any]]:
    """SIGKILL ``member`` at a moment it holds unacked work on ``stream``, and return that work."""
    consumer = _consumer(store, member)
    deadline = time.monotonic() + 60
    while True:
        fleet.freeze(member)
        held = _held(r, stream, group, consumer)
        if held or time.monotonic() > deadline:
            break
        fleet.thaw(member)                   # between two batches: try again a little later
        time.sleep(0.01)
    fleet.kill(member)
    return held


def test_a_role_split_fleet_loses_a_router_and_a_delivery_member_mid_stream(fleet_dir, namespace):
    fleet = make_fleet(fleet_dir, namespace, "redis", dedup=True, count=COUNT, rate=100)
    store = open_store("redis", {}, namespace)
    r = redis.Redis.from_url(REDIS_URL)
    events, deliveries = f"orgloop:{namespace}:events", f"orgloop:{namespace}:deliveries"
    delivered = lambda: len(fleet.delivered("dl1")) + len(fleet.delivered("dl2"))    # noqa: E731
    try:
        fleet.start("src", "source")
        rt1, _rt2 = fleet.start("rt1", "router"), fleet.start("rt2", "router")
        dl1, _dl2 = fleet.start("dl1", "delivery"), fleet.start("dl2", "delivery")
        wait_for(lambda: len(store.members()) == 5 and delivered() >= COUNT // 4, 60, fleet)
        rt1_held = _kill(fleet, rt1, store, r, events, "router")
        wait_for(lambda: bool(fleet.delivered("dl1")) and delivered() >= COUNT // 2, 60, fleet)
        dl1_held = _kill(fleet, dl1, store, r, deliveries, "delivery")
        wait_for(lambda: len({number(e) for t in ("dl1", "dl2") for e in fleet.delivered(t)}) >= COUNT, 60, fleet)
        # The survivors finished the killed members' work: both streams hold no unacked entry.
        wait_for(lambda: r.xlen(events) == 0 and r.xlen(deliveries) == 0, 60, fleet)
    finally:
        fleet.stop_all()
        store.close()
        r.close()
    out = {tag: fleet.delivered(tag) for tag in ("dl1", "dl2")}
    assert {number(e) for v in out.values() for e in v} == set(range(COUNT))          # none lost
    assert rt1_held and dl1_held, "each victim was killed holding unacked work"
    # A duplicate comes only from a killed member: a record dl1 delivered and died before acking (dl2
    # delivers it again), or an event rt1 forwarded and died before acking (rt2 forwards it again: the
    # dedup claim lets a redelivery of the same entry pass). Each can leave only what it held.
    ids = Counter(e["id"] for v in out.values() for e in v)
    dups = {i for i, n in ids.items() if n > 1}
    suspects = {e["id"] for e in rt1_held} | {rec["event"]["id"] for rec in dl1_held}
    assert dups <= suspects, (dups - suspects, fleet.stderr())
    assert all(n <= 3 for n in ids.values())          # at most one copy more per killed member
