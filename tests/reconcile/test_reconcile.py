"""Reconciling a running runtime (orgloop.reconcile + POST /apply): nothing queued is lost, refusals touch
nothing."""
import json
import threading
import time
from dataclasses import asdict

import pytest
from support.pipeline import wait_until

from orgloop import plugins
from orgloop.control.client import ControlError, _UnixConnection, request
from orgloop.control.paths import socket_path
from orgloop.reconcile import ReconcileError, apply_request
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec


class GatedActor:
    """Records deliveries once the class-wide gate opens."""

    gate = threading.Event()
    seen: list = []
    lock = threading.Lock()

    def __init__(self, actor_id, config, *, base_dir):
        self.id = actor_id

    def deliver(self, event, prompt, config):
        GatedActor.gate.wait(30)
        with GatedActor.lock:
            GatedActor.seen.append((self.id, event["id"], config.get("tag")))

    def close(self):
        pass


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    monkeypatch.setitem(plugins._registered["actors"], "test-gated", GatedActor)   # for this test only
    GatedActor.gate.clear()
    GatedActor.seen = []
    spec = RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 40, "sources": 1}, poll_interval=0.05)],
        actors=[ActorSpec("a", "test-gated", {})],
        routes=[RouteSpec("r", "gen-0", "a", config={"tag": "old"}, delivery=DeliverySpec(queue_policy="block"))],
        data_dir=tmp_path / "data", base_dir=tmp_path, control_socket=socket_path(tmp_path / "data"))
    rt = Runtime(spec).start()
    yield rt
    GatedActor.gate.set()
    rt.stop()


def _body(**kinds):
    return {kind: {"add": [asdict(x) for x in add], "remove": remove} for kind, (add, remove) in kinds.items()}


def test_a_route_changed_while_events_wait_in_its_queue_loses_none_of_them(runtime):
    # routed into the lane under the old route, not only published (a slow router met the change first)
    assert wait_until(lambda: runtime.lanes["a"].stats()["received"] == 40)
    new_r = RouteSpec("r", "gen-0", "a", config={"tag": "new"}, delivery=DeliverySpec(queue_policy="block"))
    extra = RouteSpec("r2", "gen-0", "b", config={"tag": "extra"})
    result = apply_request(runtime, {**_body(routes=([new_r, extra], ["r"]), actors=([ActorSpec("b", "test-gated")],
                                                                                    [])),
                                     "lanes": {"b": [10, "block"]}, "state": {"routes": {"r": {"v": 2}}}})
    assert result["routes"] == {"added": ["r", "r2"], "removed": ["r"]}
    assert runtime.applied_state == {"routes": {"r": {"v": 2}}}
    GatedActor.gate.set()
    assert wait_until(lambda: runtime.tracker.acked == 40)
    delivered_a = [eid for actor, eid, _tag in GatedActor.seen if actor == "a"]
    assert len(delivered_a) == len(set(delivered_a)) == 40                 # every event once, none lost
    assert {tag for actor, _eid, tag in GatedActor.seen if actor == "a"} == {"old"}   # queued under the old route
    assert runtime.status()["dead_letters"] == 0
    assert runtime.lanes["b"].queue.maxsize == 10


def test_sources_are_stopped_and_started_and_keep_their_checkpoint(runtime):
    GatedActor.gate.set()
    # the source thread moves its checkpoint after publish returns, which may be after the acks
    assert wait_until(lambda: runtime.tracker.acked == 40 and runtime.checkpoints.get("gen") is not None)
    checkpoint = runtime.checkpoints.get("gen")
    apply_request(runtime, _body(sources=([SourceSpec("gen", "generator", {"count": 40, "sources": 1},
                                                      poll_interval=0.05)], ["gen"])))
    assert runtime.checkpoints.get("gen") == checkpoint
    assert not wait_until(lambda: runtime.events_published > 40, timeout=0.5)   # resumed, nothing replayed
    assert [s.id for s in runtime.spec.sources] == ["gen"]


@pytest.mark.parametrize("body, message", [
    (_body(routes=([], ["nope"])), "no route nope is running"),
    (_body(actors=([ActorSpec("a", "test-gated", {"x": 1})], ["a"])), "changing a running actor (a) needs a restart"),
    (_body(routes=([RouteSpec("r", "gen-0", "a")], [])), "route r is already running"),
])
def test_refusals_change_nothing(runtime, body, message):
    before = dict(runtime.router.routes)
    with pytest.raises(ReconcileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_request(runtime, body)
    assert runtime.router.routes == before and set(runtime.lanes) == {"a"}


def test_control_socket_apply_and_state(runtime):
    sock = runtime.control_socket
    with pytest.raises(ControlError, match="no route nope") as err:
        request(sock, "POST", "/apply", _body(routes=([], ["nope"])))
    assert err.value.status == 409
    code, body = _raw_post(sock, "/apply", b"{not json")
    assert code == 400 and body["error"].startswith("bad request")
    with pytest.raises(ControlError) as err:
        request(sock, "POST", "/elsewhere", {})
    assert err.value.status == 404
    body = request(sock, "POST", "/apply", {**_body(routes=([], ["r"])), "state": {"x": 1}})
    assert body["routes"]["removed"] == ["r"] and "r" not in runtime.router.routes
    assert request(sock, "GET", "/state") == {"state": {"x": 1}}


def _raw_post(sock, path, data: bytes):
    """A POST whose body is not valid JSON (the client only sends JSON it encoded itself)."""
    conn = _UnixConnection(sock, 10.0)
    try:
        conn.request("POST", path, body=data)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()
