"""A role-split fleet on the Kafka bus, its shared state in a Redis named by ``runtime.fleet.store`` (Kafka
has no place for leases, checkpoints or dedup state); without one, a Kafka fleet refuses to start."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.pipeline import wait_until

from orgloop.fleet.store import StoreError
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, FleetSpec, RouteSpec, RuntimeSpec, SourceSpec, TransformRef, TransformSpec

from .conftest import REDIS_URL


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from support.servers import kafka_broker

    with kafka_broker(tmp_path_factory.mktemp("kafka")) as server:
        yield f"127.0.0.1:{server.port}"


def _spec(tmp: Path, namespace: str, broker: str, role: str, store: str | None) -> RuntimeSpec:
    return RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 200}, poll_interval=0.05)],
        actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
        transforms=[TransformSpec("once", "package", "dedup", {"key": ["id"]})],
        routes=[RouteSpec("r", "gen", "sink", transforms=[TransformRef("once")])],
        data_dir=tmp / role, base_dir=tmp, bus="kafka", role=role, member=f"{role}-1",
        bus_options={"bootstrap_servers": broker, "namespace": namespace, "partitions": 2},
        fleet=FleetSpec(lease_ttl=3.0, heartbeat=0.5, store=store))


def test_a_kafka_fleet_keeps_its_shared_state_in_the_configured_redis(tmp_path, namespace, broker):
    runtimes = [Runtime(_spec(tmp_path, namespace, broker, role, REDIS_URL)).start()
                for role in ("delivery", "router", "source")]
    try:
        out = tmp_path / "out.jsonl"
        assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 200, timeout=120)
        fleet = runtimes[2].fleet_status()
        assert fleet is not None
        assert fleet["leases_held"] == ["gen"]
        assert sorted(m["role"] for m in fleet["members"]) == ["delivery", "router", "source"]
        assert {(g["stream"], g["group"]) for g in fleet["groups"]} == {("events", "router"), ("deliveries", "delivery")}
    finally:
        for rt in runtimes:
            rt.stop()
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(e["payload"]["n"] for e in lines) == list(range(200))


def test_a_kafka_fleet_without_a_shared_store_refuses_to_start(tmp_path, namespace, broker):
    with pytest.raises(StoreError, match="runtime.fleet.store"):
        Runtime(_spec(tmp_path, namespace, broker, "source", None)).start()
