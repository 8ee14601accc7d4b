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
