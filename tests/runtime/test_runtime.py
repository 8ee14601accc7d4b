"""The runtime end to end, in-process: real WAL, real files, real threads, real HTTP on 127.0.0.1."""
import json
import sys
import threading
import urllib.error

import pytest
from support.pipeline import fetch, wait_until

from orgloop import plugins
from orgloop.connectors import DeliveryError
from orgloop.connectors.generator import GeneratorSource
from orgloop.runtime import Runtime
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, RetrySpec, RouteSpec, RuntimeSpec, SourceSpec,
                          TransformRef, TransformSpec)


class RecordingActor:
    """Fails the first ``fail_first`` deliveries of each event id whose payload.n is in ``fail_ns``."""

    instances: dict[str, "RecordingActor"] = {}

    def __init__(self, actor_id, config, *, base_dir):
        self.seen: list[dict] = []
        self.failures = 0
        self.config = config
        self.lock = threading.Lock()
        RecordingActor.instances[actor_id] = self

    def deliver(self, event, prompt, config):
        with self.lock:
            n = event["payload"]["n"]
            if n in self.config.get("always_fail", ()):
                self.failures += 1
                raise DeliveryError(f"refusing {n}")
            self.seen.append({"event": event, "prompt": prompt, "config": config})

    def close(self):
        pass


plugins.register("actors", "test-recording", RecordingActor)


def spec_for(tmp_path, bus="filewal", count=500, routes=None, actors=None, **kw):
    return RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": count, "sources": 2}, poll_interval=0.05)],
        actors=actors or [ActorSpec("a", "test-recording", {}), ActorSpec("b", "test-recording", {})],
        routes=routes or [RouteSpec("to-a", "gen-0", "a", prompt="SOP A",
                                    config={"ref": "{{payload.n}}"}, delivery=DeliverySpec(queue_policy="block")),
                          RouteSpec("to-b", "gen-*", "b", delivery=DeliverySpec(queue_policy="block"))],
        data_dir=tmp_path / "data", base_dir=tmp_path, bus=bus, **kw)


@pytest.mark.parametrize("bus", ["memory", "filewal"])
def test_events_flow_fan_out_and_are_acked_after_every_route(tmp_path, bus):
    rt = Runtime(spec_for(tmp_path, bus=bus)).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 500)
        a, b = RecordingActor.instances["a"], RecordingActor.instances["b"]
        assert len(a.seen) == 250 and len(b.seen) == 500          # gen-0 -> a and b, gen-1 -> b only
        assert a.seen[0]["prompt"] == "SOP A" and a.seen[0]["config"] == {"ref": str(a.seen[0]["event"]["payload"]["n"])}
        st = rt.status()
        assert st["events_published"] == 500 and st["healthy"] and st["dead_letters"] == 0
        if bus == "filewal":
            assert st["wal"]["unacked"] == 0 or wait_until(lambda: rt.bus.wal.stats()["unacked"] == 0)
    finally:
        rt.stop()


def test_failed_deliveries_retry_then_dead_letter_and_breaker_opens(tmp_path):
    routes = [RouteSpec("flaky", "gen-*", "a", delivery=DeliverySpec(
        queue_policy="block", retry=RetrySpec(max_attempts=2, initial_delay=0.001, max_delay=0.001),
        circuit_breaker=BreakerSpec(failure_threshold=3, cooldown=0.05)))]
    actors = [ActorSpec("a", "test-recording", {"always_fail": [3, 4, 5]})]
    rt = Runtime(spec_for(tmp_path, count=20, routes=routes, actors=actors)).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 20)
        a = RecordingActor.instances["a"]
        assert len(a.seen) == 17 and a.failures == 6                 # 3 events x 2 attempts
        dead = [e for _s, e in rt.dlq.entries()]
        assert sorted(d["event"]["payload"]["n"] for d in dead) == [3, 4, 5]
        assert {d["reason"] for d in dead} == {"gave_up"} and dead[0]["attempts"] == 2
        stats = rt.lanes["a"].stats()["routes"]["flaky"]
        assert stats["dead_lettered"] == 3 and stats["retried"] == 3
    finally:
        rt.stop()


def test_unacked_events_are_delivered_after_a_restart(tmp_path):
    actors = [ActorSpec("a", "test-recording", {"always_fail": list(range(1000))})]   # nothing succeeds...
    routes = [RouteSpec("r", "gen-*", "a", delivery=DeliverySpec(
        queue_policy="block", retry=RetrySpec(max_attempts=1000, initial_delay=0.5, max_delay=0.5)))]
    rt = Runtime(spec_for(tmp_path, count=30, routes=routes, actors=actors)).start()
    assert wait_until(lambda: rt.events_published == 30)
    rt.stop(drain_timeout=0.2)                                    # ...so all 30 stay unacked in the WAL
    ok_spec = spec_for(tmp_path, count=30, routes=routes, actors=[ActorSpec("a", "test-recording", {})])
    rt2 = Runtime(ok_spec).start()
    try:
        assert wait_until(lambda: rt2.tracker.acked >= 30)
        got = sorted(s["event"]["payload"]["n"] for s in RecordingActor.instances["a"].seen)
        assert got == list(range(30))                             # redelivered; the source did not re-emit
        assert rt2.checkpoints.get("gen") == "30"
    finally:
        rt2.stop()


def test_drop_oldest_sends_overflow_to_dead_letters_and_never_loses_it(tmp_path):
    routes = [RouteSpec("small", "gen-*", "a", delivery=DeliverySpec(queue_depth=5, queue_policy="drop_oldest"))]
    rt = Runtime(spec_for(tmp_path, count=3000, routes=routes)).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 3000)
        delivered = {s["event"]["payload"]["n"] for s in RecordingActor.instances["a"].seen}
        dead = {e["event"]["payload"]["n"] for _s, e in rt.dlq.entries()}
        assert delivered | dead == set(range(3000)) and not delivered & dead
        assert rt.lanes["a"].dropped == len(dead)
    finally:
        rt.stop()


def test_transforms_on_a_route_and_reconcile_without_restart(tmp_path):
    spec = spec_for(tmp_path, count=100, transforms=[
        TransformSpec("evens", "package", "filter", {"match": {"payload.n": list(range(0, 100, 2))}})])
    spec.routes = [RouteSpec("evens-to-a", "gen-*", "a", transforms=[TransformRef("evens")],
                             delivery=DeliverySpec(queue_policy="block"))]
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 100)
        assert sorted(s["event"]["payload"]["n"] for s in RecordingActor.instances["a"].seen) == list(range(0, 100, 2))
        rt.apply_routes(add=[RouteSpec("all-to-b", "gen-*", "b", delivery=DeliverySpec(queue_policy="block"))],
                        remove=["evens-to-a"])
        assert set(rt.router.routes) == {"all-to-b"}
        seqs = rt.bus.publish_many([{"id": "evt_00000000000000aa", "timestamp": "2026-01-01T00:00:00Z",
                                     "source": "gen-1", "type": "resource.changed",
                                     "provenance": {"platform": "t"}, "payload": {"n": 1},
                                     "trace_id": "trc_00000000000000aa"}])
        assert wait_until(lambda: len(RecordingActor.instances["b"].seen) == 1) and len(seqs) == 1
    finally:
        rt.stop()


def test_control_endpoint_health_metrics_status(tmp_path):
    rt = Runtime(spec_for(tmp_path, count=50, control_port=0)).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 50)
        base = f"http://127.0.0.1:{rt._control.port}"
        health = json.loads(fetch(base + "/healthz"))
        assert health == {"ok": True, "problems": []}
        metrics = fetch(base + "/metrics").decode()
        assert 'orgloop_delivered_total{route="to-b",actor="b"} 50' in metrics
        assert "orgloop_wal_fsync_seconds_bucket" in metrics and "orgloop_queue_depth" in metrics
        status = json.loads(fetch(base + "/status"))
        assert status["events_published"] == 50 and {r["name"] for r in status["routes"]} == {"to-a", "to-b"}
        rt.lanes["a"].policies["to-a"].breaker.record_failure()
        for _ in range(5):
            rt.lanes["a"].policies["to-a"].breaker.record_failure()
        with pytest.raises(urllib.error.HTTPError) as err:
            fetch(base + "/healthz")
        assert err.value.code == 503 and b"circuit breaker" in err.value.read()
        err.value.close()
    finally:
        rt.stop()


def test_dedup_drops_republished_copies_but_lets_a_dead_letter_replay_through(tmp_path):
    spec = spec_for(tmp_path, count=20, transforms=[TransformSpec("once", "package", "dedup", {"window": "1h"})],
                    actors=[ActorSpec("a", "test-recording", {"always_fail": [3, 4]})])
    spec.routes = [RouteSpec("r", "gen-*", "a", transforms=[TransformRef("once")], delivery=DeliverySpec(
        queue_policy="block", retry=RetrySpec(max_attempts=1)))]
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 20)
        a = RecordingActor.instances["a"]
        assert len(a.seen) == 18 and rt.dlq.count() == 2
        rt.bus.publish_many([dict(s["event"]) for s in a.seen[:10]])        # the same events again (new seqs)
        assert wait_until(lambda: rt.tracker.acked == 30)
        assert len(a.seen) == 18
        a.config["always_fail"] = []
        assert len(rt.dlq.replay(rt.bus.publish_many)) == 2                   # dedup released the dead letters
        assert wait_until(lambda: len(a.seen) == 20)
        assert sorted(s["event"]["payload"]["n"] for s in a.seen) == list(range(20))
    finally:
        rt.stop()


FOLLOW_UP_SCRIPT = """
import json, os, sys
e = json.load(sys.stdin)
n = e["payload"]["n"]
assert os.environ["ORGLOOP_TRACE_ID"] == e["trace_id"]
if n == 5:
    print(json.dumps({"type": "not.a.type"}))   # not a valid event: logged and ignored, the exit code decides
elif n % 2 == 0:
    print(json.dumps({"type": "actor.stopped", "payload": {"cause": e["id"]}}))
else:
    print("just chatter, not JSON")
"""


def test_an_actors_follow_up_events_keep_the_trace_of_their_cause(tmp_path):
    script = tmp_path / "agent.py"
    script.write_text(FOLLOW_UP_SCRIPT)
    spec = spec_for(tmp_path, count=6, actors=[
        ActorSpec("agent", "command", {"command": [sys.executable, str(script)], "timeout": "20s"}),
        ActorSpec("sink", "file", {"path": "follow-ups.jsonl"})])
    spec.sources = [SourceSpec("gen", "generator", {"count": 6}, poll_interval=0.05)]
    spec.routes = [RouteSpec("work", "gen", "agent", delivery=DeliverySpec(queue_policy="block",
                                                                            retry=RetrySpec(max_attempts=1))),
                   RouteSpec("after", "agent", "sink", events=["actor.stopped"])]
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 6 + 3)              # 6 causes, 3 follow-ups
        assert rt.dlq.count() == 0
        sent, _cp = GeneratorSource("gen", {"count": 6}, base_dir=tmp_path).poll(None, 6)   # the same events
        trace_of = {e["id"]: e["trace_id"] for e in sent if e["payload"]["n"] % 2 == 0}
        got = [json.loads(line) for line in (tmp_path / "follow-ups.jsonl").read_text().splitlines()]
        assert sorted(f["payload"]["cause"] for f in got) == sorted(trace_of)
        assert all(f["trace_id"] == trace_of[f["payload"]["cause"]] and f["source"] == "agent" for f in got)
        assert rt.lanes["agent"].stats()["follow_ups"] == 3
    finally:
        rt.stop()


class BrokenPlugin:
    """A source or actor whose constructor fails, as a bad config or a missing binary would make it."""

    def __init__(self, plugin_id, config, *, base_dir):
        raise RuntimeError(f"{plugin_id} cannot start")


plugins.register("sources", "test-broken", BrokenPlugin)
plugins.register("actors", "test-broken", BrokenPlugin)


@pytest.mark.parametrize("broken", ["source", "actor"])
def test_a_start_that_fails_partway_leaves_no_thread_and_no_lock_behind(tmp_path, broken):
    """The bus, the dead-letter store and the lanes are open and running when the last source (or an
    actor) fails to start; the failed start must close them all, so that the same process can start
    the runtime again on the same data directory at once."""
    before = {t.ident for t in threading.enumerate()}
    spec = spec_for(tmp_path, count=50)
    if broken == "source":
        spec.sources.append(SourceSpec("bad", "test-broken", {}))
    else:
        spec.actors.append(ActorSpec("bad", "test-broken", {}))
    RecordingActor.instances.clear()
    with pytest.raises(RuntimeError, match="bad cannot start"):
        Runtime(spec).start()
    assert wait_until(lambda: not [t for t in threading.enumerate() if t.ident not in before and t.is_alive()])
    first = RecordingActor.instances.get("b")
    got_first = {d["event"]["payload"]["n"] for d in first.seen} if first is not None else set()
    rt = Runtime(spec_for(tmp_path, count=50)).start()     # the WAL's and the stores' locks were released
    try:
        # Whatever the failed start published and did not deliver is delivered now: nothing is lost.
        b = RecordingActor.instances["b"]
        assert wait_until(lambda: got_first | {d["event"]["payload"]["n"] for d in list(b.seen)} == set(range(50)))
    finally:
        rt.stop()
