"""The log entries a real pipeline writes (JSONL file logger): every phase of orgloop-format.md that this
pipeline goes through, every listed field on every entry, retry timing, breaker changes and dead letters."""
import json

from support.pipeline import wait_until

from orgloop import plugins
from orgloop.connectors import DeliveryError
from orgloop.loggers import ENTRY_FIELDS
from orgloop.runtime import Runtime
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, LoggerSpec, RetrySpec, RouteSpec, RuntimeSpec,
                          SourceSpec, TransformRef, TransformSpec)


class PickyActor:
    """Always refuses payload.n in ``always``; refuses n in ``once`` the first time only."""

    def __init__(self, actor_id, config, *, base_dir):
        self.always, self.once = set(config["always"]), set(config["once"])

    def deliver(self, event, prompt, config):
        n = event["payload"]["n"]
        if n in self.always or n in self.once:
            self.once.discard(n)
            raise DeliveryError(f"refusing {n}")

    def close(self):
        pass


plugins.register("actors", "test-picky", PickyActor)


def test_pipeline_steps_are_logged_with_every_field(tmp_path):
    spec = RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 40, "sources": 2}, poll_interval=0.05)],
        actors=[ActorSpec("a", "test-picky", {"always": [4, 6], "once": [8]})],
        transforms=[TransformSpec("not-ten", "package", "filter", {"exclude": {"payload.n": 10}})],
        routes=[RouteSpec("r", "gen-0", "a", transforms=[TransformRef("not-ten")], delivery=DeliverySpec(
            queue_policy="block", retry=RetrySpec(max_attempts=2, initial_delay=0.01, max_delay=0.01),
            circuit_breaker=BreakerSpec(failure_threshold=2, cooldown=0.05)))],
        loggers=[LoggerSpec("file", "file", {"path": "log.jsonl"})],
        data_dir=tmp_path / "data", base_dir=tmp_path, workspace="staging")
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 40)
    finally:
        rt.stop()
    entries = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    phases = [e["phase"] for e in entries]
    assert phases[0] == "runtime.start" and phases[-1] == "runtime.stop"
    assert set(phases) == {"runtime.start", "runtime.stop", "source.emit", "route.match", "route.no_match",
                           "transform.start", "transform.pass", "transform.drop", "deliver.attempt",
                           "deliver.success", "deliver.failure", "deliver.retry", "breaker.open",
                           "breaker.half_open", "breaker.close", "dlq.add"}
    for e in entries:
        assert list(e)[:len(ENTRY_FIELDS)] == list(ENTRY_FIELDS)
        assert e["workspace"] == "staging" and e["hostname"] and e["orgloop_version"] and e["timestamp"]
        if e["event_id"] is not None:          # per-event entries carry the event's trace
            assert e["trace_id"] == "trc_" + e["event_id"][4:] and e["event_type"] == "resource.changed"
    by = lambda phase: [e for e in entries if e["phase"] == phase]   # noqa: E731
    assert len(by("route.no_match")) == 20 and {e["source"] for e in by("route.no_match")} == {"gen-1"}
    assert len(by("route.match")) == 20 and {(e["route"], e["target"]) for e in by("route.match")} == {("r", "a")}
    (drop,) = by("transform.drop")
    assert drop["transform"] == "not-ten" and drop["result"] == "drop" and drop["duration_ms"] >= 0
    assert len(by("transform.start")) == 20 and len(by("transform.pass")) == 19
    assert len(by("deliver.success")) == 17                     # 20 - n=10 dropped - n=4, n=6 dead-lettered
    retries = by("deliver.retry")
    assert len(retries) == 3 and all(8.0 <= r["metadata"]["delay_ms"] <= 10.0 for r in retries)   # 10 ms, -20% jitter
    assert [r["metadata"]["attempt"] for r in retries] == [1, 1, 1]
    assert all(f["error"].startswith("refusing ") and f["result"] == "failed" for f in by("deliver.failure"))
    assert len(by("deliver.failure")) == 5 and len(by("deliver.attempt")) == 17 + 5
    dead = by("dlq.add")
    assert [d["metadata"]["attempts"] for d in dead] == [2, 2] and all(d["result"] == "gave_up" for d in dead)
    breaker = [(e["phase"], e["metadata"]["from"]) for e in entries if e["phase"].startswith("breaker.")]
    assert breaker == [("breaker.open", "closed")] + [("breaker.half_open", "open"), ("breaker.open", "half_open")] * 3 + [
        ("breaker.half_open", "open"), ("breaker.close", "half_open")]
    assert all(e["route"] == "r" and e["target"] == "a" for e in entries if e["phase"].startswith(("breaker", "deliver")))
