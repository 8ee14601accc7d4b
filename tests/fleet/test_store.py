"""The shared store's guarantees, on the real servers: a lease has one holder, each new holder a higher
epoch; a checkpoint is written only by the lease's current holder; dedup claims hold across members."""
from __future__ import annotations

import time

from support.pipeline import wait_until

from orgloop.fleet.lease import SourceLease


def test_a_lease_has_one_holder_and_each_new_holder_a_higher_epoch(store):
    first = store.acquire("src", "a", 0.5)
    assert first > 0
    assert store.acquire("src", "b", 0.5) == 0            # held by a
    assert store.acquire("src", "a", 0.5) == first        # a renews: same epoch
    assert wait_until(lambda: store.acquire("src", "b", 0.5) > first, timeout=10)   # lapsed: b takes it
    second = store.acquire("src", "b", 0.5)
    assert second > first and store.acquire("src", "a", 0.5) == 0
    store.release("src", "b", second)
    assert store.acquire("src", "a", 5) > second           # released: taken at once, epochs only grow
    assert [(lease["source"], lease["holder"]) for lease in store.leases()] == [("src", "a")]


def test_a_member_that_lost_its_lease_cannot_overwrite_the_new_holders_checkpoint(store):
    old = store.acquire("src", "a", 0.3)
    assert store.put_checkpoint("src", "10", "a", old)
    assert wait_until(lambda: store.acquire("src", "b", 5) > old, timeout=10)
    new = store.acquire("src", "b", 5)
    assert store.checkpoint("src") == "10"
    assert not store.put_checkpoint("src", "12", "a", old)      # a still thinks it polls: refused
    assert store.put_checkpoint("src", "20", "b", new)
    assert not store.put_checkpoint("src", "11", "a", old)
    assert store.checkpoint("src") == "20"


def test_dedup_claims_hold_across_members(store):
    key = b"k" * 16
    assert store.dedup_claim("dd", key, "ref-1", 60)       # first copy
    assert store.dedup_claim("dd", key, "ref-1", 60)       # the same entry redelivered (another member)
    assert not store.dedup_claim("dd", key, "ref-2", 60)   # another copy while the first is in flight
    store.dedup_settle("dd", [(key, "ref-1", False)], 60)  # dead-lettered: released
    assert store.dedup_claim("dd", key, "ref-2", 60)
    store.dedup_settle("dd", [(key, "ref-2", True)], 60)   # delivered: marked
    assert not store.dedup_claim("dd", key, "ref-2", 60)   # every copy is dropped now, a redelivery too
    assert not store.dedup_claim("dd", key, "ref-3", 60)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_source_stops_polling_before_its_lease_could_lapse_when_renewals_fail(store):
    clock = _Clock()
    lease = SourceLease(store, "src", "a", ttl=10.0, clock=clock)
    assert lease.keep() and lease.epoch > 0
    store_acquire = store.acquire

    def unreachable(*args):
        from orgloop.fleet.store import StoreError
        raise StoreError("cut off")

    store.acquire = unreachable                            # every renewal fails from now on
    clock.now += 2.6                                       # a renewal is due (every ttl/4) and fails
    assert lease.keep()                                    # 5.4 s left of the 8 s it trusts: polls go on
    clock.now += 0.5
    assert not lease.keep()                                # under ttl/2 left: no new poll starts
    assert lease.valid()                                   # (a poll already running may finish)
    clock.now += 5.0
    assert not lease.valid()                               # 8.1 s: trust ended, 1.9 s before the server's TTL
    store.acquire = store_acquire


def test_members_are_listed_while_they_heartbeat(store):
    store.heartbeat("m1", {"member": "m1", "role": "router", "last_seen": time.time()}, 0.5)
    store.heartbeat("m2", {"member": "m2", "role": "delivery", "last_seen": time.time()}, 30)
    assert [m["member"] for m in store.members()] == ["m2", "m1"]
    assert wait_until(lambda: [m["member"] for m in store.members()] == ["m2"], timeout=10)
    store.leave("m2")
    assert store.members() == []
