"""A source that returns an event the bus cannot store: that event is refused, the rest are published."""
from __future__ import annotations

import json

from support.pipeline import wait_until

from orgloop import plugins
from orgloop.event import new_event
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec


class PoisonSource:
    """One batch: good events with one that msgpack cannot hold (an int beyond 64 bits) in the middle."""

    def __init__(self, source_id, config, *, base_dir):
        self.id = source_id

    def poll(self, checkpoint, max_events):
        if checkpoint == "done":
            return [], checkpoint
        events = [new_event(self.id, "resource.changed", {"n": i}) for i in range(5)]
        events[2]["payload"]["n"] = 1 << 70
        return events, "done"

    def close(self):
        pass


plugins.register("sources", "test-poison", PoisonSource)


def test_a_batch_with_an_unstorable_event_publishes_the_rest_and_moves_on(tmp_path):
    spec = RuntimeSpec(
        sources=[SourceSpec("src", "test-poison", {}, poll_interval=0.05)],
        actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
        routes=[RouteSpec("r", "src", "sink", delivery=DeliverySpec(queue_policy="block"))],
        data_dir=tmp_path / "data", base_dir=tmp_path, bus="filewal")
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 4, timeout=60)
        # the source stores its checkpoint after the publish returns, so it may follow the acks
        assert wait_until(lambda: rt.checkpoints.get("src") == "done", timeout=60)
        assert rt.source_errors == 1
    finally:
        rt.stop()
    seen = [json.loads(line)["payload"]["n"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert seen == [0, 1, 3, 4]
