"""Fleets of real ``orgloop start --role`` processes on a real server bus, with a member SIGKILLed
mid-stream: nothing is lost, each event is delivered once with the fleet-wide dedup (duplicates counted
against the documented window), the source lease moves to a survivor and no two members ever poll the
source at the same time; and a role-split fleet (source, router, delivery) delivers end to end."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from orgloop.fleet import open_store

from .members import Fleet, current_lease, make_fleet, number as _ns, overlapping_polls, stale_polls, wait_for

COUNT = 450


def _fleet(fleet_dir: Path, namespace: str, bus: str, *, dedup: bool, count: int = COUNT, rate: int = 100) -> Fleet:
    return make_fleet(fleet_dir, namespace, bus, dedup=dedup, count=count, rate=rate)


@pytest.mark.parametrize("bus", ["redis", "nats"])
def test_three_members_lose_one_mid_stream_and_the_others_finish_its_work(fleet_dir, namespace, bus):
    fleet = _fleet(fleet_dir, namespace, bus, dedup=True)
    store = open_store(bus, {}, namespace)
    try:
        for tag in ("m0", "m1", "m2"):
            fleet.start(tag)
        wait_for(lambda: len(store.members()) == 3, 60, fleet)
        total = lambda: sum(len(v) for v in fleet.all_delivered().values())   # noqa: E731
        wait_for(lambda: total() >= COUNT // 3, 120, fleet)
        holder = current_lease(store)
        victim = next(m for m in fleet.members if fleet.member_id(m) == holder["holder"])
        before_kill = {tag: len(v) for tag, v in fleet.all_delivered().items()}
        fleet.kill(victim)
        ids_wanted = COUNT
        wait_for(lambda: len({e["id"] for v in fleet.all_delivered().values() for e in v}) >= ids_wanted, 180, fleet)
        new_holder = current_lease(store, holder)["holder"]
    finally:
        fleet.stop_all()
        store.close()
    delivered = fleet.all_delivered()
    ids = Counter(e["id"] for v in delivered.values() for e in v)
    numbers = {_ns(e) for v in delivered.values() for e in v}
    assert numbers == set(range(COUNT))                                 # none lost
    # Fleet-wide dedup: an event reaches the actor twice only across the documented window (the victim
    # delivered it, and died before its delivered mark was written), so every duplicate has a copy there.
    dups = {i for i, n in ids.items() if n > 1}
    victim_ids = {e["id"] for e in delivered[victim.tag]}
    assert dups <= victim_ids, (dups - victim_ids, fleet.stderr())
    # The window is one flush interval (50 ms) of the victim's deliveries: at 100 events/s about 2; 20 leaves
    # room for a loaded machine. (With the dedup state kept per member instead, this run had 69.)
    assert len(dups) <= 20, len(dups)
    # The lease moved to a survivor, and no two members ever polled the source at the same time.
    assert new_holder != holder["holder"]
    polls = fleet.polls()
    assert len({p["member"] for p in polls}) >= 2
    assert overlapping_polls(polls) == []
    assert stale_polls(polls) == []
    # Per-key order: the bus hands each member its first deliveries in order; before the kill nothing was
    # redelivered, so each member's deliveries up to then are in publish order.
    for tag, upto in before_kill.items():
        seen = [_ns(e) for e in delivered[tag][:upto]]
        assert seen == sorted(seen), tag


@pytest.mark.parametrize("bus", ["redis", "nats"])
def test_a_role_split_fleet_delivers_end_to_end(fleet_dir, namespace, bus):
    fleet = _fleet(fleet_dir, namespace, bus, dedup=True, count=300, rate=0)
    store = open_store(bus, {}, namespace)
    try:
        fleet.start("src", "source")
        fleet.start("rt1", "router")
        fleet.start("rt2", "router")
        fleet.start("dl", "delivery")
        wait_for(lambda: len(fleet.delivered("dl")) >= 300, 120, fleet)
        roles = sorted(m["role"] for m in store.members())
    finally:
        fleet.stop_all()
        store.close()
    delivered = fleet.delivered("dl")
    assert sorted(_ns(e) for e in delivered) == list(range(300))        # once each, nothing lost
    assert roles == ["delivery", "router", "router", "source"]
    assert all(not fleet.delivered(tag) for tag in ("src", "rt1", "rt2"))   # only the delivery role delivers
