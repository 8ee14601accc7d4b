"""NatsBus against the real NATS JetStream server on 127.0.0.1:4222 (never skipped: a missing server fails),
and against a server of the test's own for restarts."""
from __future__ import annotations

import os
import uuid

import pytest

from orgloop.bus.nats import NatsBus

from .conformance import BusContract, check_a_server_restart_loses_nothing, events

URL = os.environ.get("ORGLOOP_TEST_NATS", "nats://127.0.0.1:4222")


def delete_stream(url: str, stream: str) -> None:
    import asyncio

    import nats

    async def go() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(stream)
        except Exception:
            pass
        await nc.close()

    asyncio.run(go())


@pytest.fixture
def namespace():
    ns = f"test-{uuid.uuid4().hex[:12]}"
    yield ns
    delete_stream(URL, "orgloop_" + ns)


class TestNatsBus(BusContract):
    durable = True

    @pytest.fixture(autouse=True)
    def _ns(self, namespace):
        self.ns = namespace

    def make_bus(self, tmp_path):
        return NatsBus(url=URL, namespace=self.ns, storage="memory")

    def reopen(self, bus, tmp_path):
        return NatsBus(url=URL, namespace=self.ns, storage="memory")


def test_a_republished_event_id_is_stored_once(namespace):
    with NatsBus(url=URL, namespace=namespace, storage="memory") as bus:
        batch = events(3)
        bus.publish_many([dict(e) for e in batch])
        bus.publish_many([dict(e) for e in batch])          # a retry after a lost reply: same ids
        refs, got = bus.fetch(10, timeout=1)
        assert [e["payload"]["n"] for e in got] == [0, 1, 2]


def test_subjects_escape_source_ids(namespace):
    with NatsBus(url=URL, namespace=namespace, storage="memory") as bus:
        ev = events(1, source="github.org/repo*>")[0]
        assert bus.subject(ev) == f"orgloop.{namespace}.github_2eorg_2frepo_2a_3e.resource_2echanged"
        bus.publish_many([ev])
        assert bus.fetch(1, timeout=2)[1][0]["source"] == "github.org/repo*>"


def test_a_server_restart_loses_nothing_acknowledged(tmp_path):
    from support.servers import nats_server

    with nats_server(tmp_path / "nats") as server:
        bus = NatsBus(url=f"nats://127.0.0.1:{server.port}", namespace="restart", publish_timeout=30)
        check_a_server_restart_loses_nothing(bus, server, in_order=False)


def test_the_delivery_count_of_a_redelivered_message(namespace):
    a = NatsBus(url=URL, namespace=namespace, storage="memory", ack_wait=0.5)
    b = NatsBus(url=URL, namespace=namespace, storage="memory", ack_wait=0.5)
    try:
        a.publish_many(events(2))
        refs, _ = a.fetch(2, timeout=2)
        assert [a.delivery_count(ref) for ref in refs] == [1, 1] and a.delivery_count("x") is None
        a.close()                                   # dies without acking: the server redelivers after ack_wait
        taken: list[str] = []
        for _ in range(50):
            more, _evs = b.fetch(10, timeout=0.2)
            taken += more
            if len(taken) == 2:
                break
        assert taken == refs and [b.delivery_count(ref) for ref in refs] == [2, 2]
        b.ack_many(refs)
    finally:
        a.close()
        b.close()
