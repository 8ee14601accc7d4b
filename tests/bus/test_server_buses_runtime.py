"""The same project runs on every server bus: one line of config (runtime.bus) is the only change."""
from __future__ import annotations

import json
import uuid

import pytest
from support.pipeline import wait_until

from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec


@pytest.mark.parametrize("bus", ["redis", "nats"])
def test_a_pipeline_runs_end_to_end_on_a_server_bus(tmp_path, bus):
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    spec = RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 300, "sources": 2}, poll_interval=0.05)],
        actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
        routes=[RouteSpec("r", "gen-*", "sink", delivery=DeliverySpec(queue_policy="block"))],
        data_dir=tmp_path / "data", base_dir=tmp_path, bus=bus, name=name,
        bus_options={"storage": "memory"} if bus == "nats" else {})
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 300, timeout=60)
        assert rt.healthy()[0]
        assert rt.bus.stats()["stream"].endswith(f"{name}.default:events") or name in rt.bus.stats()["stream"]
    finally:
        rt.stop()
        _cleanup(bus, rt.bus)
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 300 and len({e["id"] for e in lines}) == 300
    assert all(isinstance(e["bus_ref"], str) for e in lines)


def _cleanup(bus: str, b) -> None:
    if bus == "redis":
        import redis
        redis.Redis.from_url(b.config.url).delete(b.stream)
    else:
        from .test_nats_bus import delete_stream
        delete_stream(b.config.url, b.stream)
