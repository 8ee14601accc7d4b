"""RedisBus against the real Redis server on 127.0.0.1:6379 (never skipped: a missing server fails)."""
from __future__ import annotations

import os
import uuid

import pytest

from orgloop.bus import open_bus
from orgloop.bus.redis import RedisBus

from .conformance import BusContract, check_a_server_restart_loses_nothing, events

URL = os.environ.get("ORGLOOP_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def namespace():
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    import redis
    redis.Redis.from_url(URL).delete(f"orgloop:{ns}:events")


class TestRedisBus(BusContract):
    durable = True

    @pytest.fixture(autouse=True)
    def _ns(self, namespace):
        self.ns = namespace

    def make_bus(self, tmp_path):
        return RedisBus(url=URL, namespace=self.ns, consumer="c1")

    def reopen(self, bus, tmp_path):
        return RedisBus(url=URL, namespace=self.ns, consumer="c1")


def test_a_dead_consumers_work_is_reclaimed_after_the_idle_time(namespace):
    a = RedisBus(url=URL, namespace=namespace, consumer="a", claim_idle=0.2)
    b = RedisBus(url=URL, namespace=namespace, consumer="b", claim_idle=0.2)
    try:
        a.publish_many(events(5))
        refs, got = a.fetch(3, timeout=2)          # a takes three and dies without acking
        assert len(got) == 3
        a.close()                                   # its heartbeat stops: its entries go idle
        seen = []
        for _ in range(50):
            r, evs = b.fetch(10, timeout=0.1)
            seen += [e["payload"]["n"] for e in evs]
            if len(seen) >= 5:
                break
        assert sorted(seen) == [0, 1, 2, 3, 4] and b.claimed == 3   # b's own (3, 4) stay b's: no repeats
    finally:
        a.close()
        b.close()


def test_the_stream_holds_exactly_the_unacked_entries(namespace):
    import redis
    r = redis.Redis.from_url(URL)
    with RedisBus(url=URL, namespace=namespace, consumer="c") as bus:
        bus.publish_many(events(20))
        fetched, _ = bus.fetch(20, timeout=2)
        bus.ack_many([x for i, x in enumerate(fetched) if i != 7])   # one gap at n=7
        assert r.xlen(f"orgloop:{namespace}:events") == 1
        assert [e["payload"]["n"] for _r, evs in bus.unacked() for e in evs] == [7]


def test_open_bus_checks_the_options(namespace):
    from orgloop.plugins import PluginConfigError
    with pytest.raises(PluginConfigError, match="claim_idl"):
        open_bus("redis", url=URL, namespace=namespace, claim_idl=3)


def test_a_live_members_slow_work_is_not_taken_over(namespace):
    import time
    a = RedisBus(url=URL, namespace=namespace, consumer="a", claim_idle=0.3)
    b = RedisBus(url=URL, namespace=namespace, consumer="b", claim_idle=0.3)
    try:
        a.publish_many(events(3))
        refs, got = a.fetch(3, timeout=2)
        assert len(got) == 3
        time.sleep(1.0)                           # more than three idle periods, a still alive
        assert b.fetch(10, timeout=0.2) == ([], []) and b.claimed == 0
        a.ack_many(refs)
    finally:
        a.close()
        b.close()


def test_a_server_restart_loses_nothing_acknowledged_and_health_shows_the_outage(tmp_path):
    from support.servers import redis_server

    with redis_server(tmp_path / "redis") as server:
        bus = RedisBus(url=f"redis://127.0.0.1:{server.port}/0", namespace="restart", consumer="c",
                       publish_timeout=30)
        check_a_server_restart_loses_nothing(bus, server, in_order=True)



def _entry_id(ref: str) -> str:
    """The Redis stream id of a RedisBus ref (which is written fixed-width)."""
    ms, seq = ref.split("-")
    return f"{int(ms)}-{int(seq)}"


def test_a_heartbeat_leaves_an_entry_another_member_took_over_with_it(namespace):
    import time

    import redis
    r = redis.Redis.from_url(URL)
    stream = f"orgloop:{namespace}:events"
    a = RedisBus(url=URL, namespace=namespace, consumer="a", claim_idle=0.3)
    try:
        a.publish_many(events(3))
        refs, _ = a.fetch(3, timeout=2)
        ids = [_entry_id(ref) for ref in refs]
        # b takes the first entry over as its XAUTOCLAIM would once a was cut off for claim_idle
        assert r.xclaim(stream, "router", "b", 0, [ids[0]], justid=True) == [ids[0].encode()]
        time.sleep(1.0)                           # three of a's heartbeats
        owners = {p["message_id"].decode(): p["consumer"].decode()
                  for p in r.xpending_range(stream, "router", "-", "+", 10)}
        assert owners == {ids[0]: "b", ids[1]: "a", ids[2]: "a"}
        assert a.stats()["inflight"] == 3         # a still acks what it has in hand
        a.ack_many(refs)
        assert r.xlen(stream) == 0
    finally:
        a.close()
        r.close()


def test_the_delivery_count_of_a_taken_over_or_reread_entry(namespace):
    a = RedisBus(url=URL, namespace=namespace, consumer="a", claim_idle=0.2)
    b = RedisBus(url=URL, namespace=namespace, consumer="b", claim_idle=0.2)
    try:
        a.publish_many(events(2))
        refs, _ = a.fetch(2, timeout=2)
        assert [a.delivery_count(ref) for ref in refs] == [1, 1] and a.delivery_count("1-1") is None
        a.close()                                  # dies: b takes both over after claim_idle
        taken: list[str] = []
        for _ in range(50):
            more, _evs = b.fetch(10, timeout=0.1)
            taken += more
            if len(taken) == 2:
                break
        assert taken == refs and [b.delivery_count(ref) for ref in refs] == [2, 2]
        b.close()                                  # b restarts without acking: it re-reads its own pending
        b = RedisBus(url=URL, namespace=namespace, consumer="b", claim_idle=0.2)
        again, _evs = b.fetch(10, timeout=1)
        assert again == refs and [b.delivery_count(ref) for ref in refs] == [3, 3]
        b.ack_many(refs)
        assert [b.delivery_count(ref) for ref in refs] == [None, None]
    finally:
        a.close()
        b.close()
