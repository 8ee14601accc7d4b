"""The ``webhook``/``http`` and ``openclaw`` actors against a fake gateway on 127.0.0.1: delivery, retry
classes (5xx storm, 429 with Retry-After, 4xx rejection), keep-alive, auth and signing, OpenClaw's wire format."""
from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from orgloop.connectors import DeliveryError
from orgloop.connectors.http_actor import HttpActor, render_template
from orgloop.connectors.ingress import sign
from orgloop.connectors.openclaw import OpenClawActor
from orgloop.event import new_event
from orgloop.spec import ActorSpec, BreakerSpec, RetrySpec, SourceSpec
from support.fake_gateway import post
from support.pipeline import wait_until

TOKEN = "tok-for-tests-123"


def _event(**payload):
    return new_event("gh", "resource.changed", payload or {"pr": 7},
                     provenance={"platform": "github", "platform_event": "pull_request.opened", "author": "alice",
                                 "repo": "acme/app"})


def test_default_body_auth_signing_and_keep_alive(gateway, tmp_path):
    actor = HttpActor("hook", {"url": gateway.url + "/in?x=1", "auth": {"type": "bearer", "token": TOKEN},
                               "sign_secret": "sig", "headers": {"X-Team": "a"}}, base_dir=tmp_path)
    events = [_event(n=i) for i in range(3)]
    for e in events:
        actor.deliver(e, "do it", {})
    assert [r.json() for r in gateway.received] == [{"event": e, "launch_prompt": "do it"} for e in events]
    first = gateway.received[0]
    assert first.path == "/in?x=1" and first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["X-Team"] == "a" and first.headers["X-Hub-Signature-256"] == sign("sig", first.body)
    assert {r.connection for r in gateway.received} == {1}          # one kept-alive connection
    actor.close()
    basic = HttpActor("b", {"url": gateway.url, "method": "put",
                            "auth": {"type": "basic", "username": "u", "password": "p"}}, base_dir=tmp_path)
    basic.deliver(events[0], None, {})
    last = gateway.received[-1]
    assert last.method == "PUT" and last.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    basic.close()


def test_body_template_fills_values_without_evaluating():
    ctx = {"event": {"source": "gh", "payload": {"pr": {"n": 7}}}, "launch_prompt": "p"}
    tpl = {"text": "PR {{ event.payload.pr.n }} from {{event.source}}{{ nothing }}", "pr": "{{ event.payload.pr }}",
           "list": ["{{launch_prompt}}", "{{ __import__('os') }}"]}
    assert render_template(tpl, ctx) == {"text": "PR 7 from gh", "pr": {"n": 7},
                                          "list": ["p", "{{ __import__('os') }}"]}


@pytest.mark.parametrize("status, headers, retryable, retry_after", [
    (500, {}, True, None), (503, {"Retry-After": "7"}, True, 7.0), (429, {"Retry-After": "2"}, True, 2.0),
    (404, {}, False, None), (400, {}, False, None),
])
def test_status_classes(gateway, tmp_path, status, headers, retryable, retry_after):
    gateway.default = (status, headers)
    actor = HttpActor("hook", {"url": gateway.url, "auth": {"type": "bearer", "token": TOKEN}}, base_dir=tmp_path)
    with pytest.raises(DeliveryError) as info:
        actor.deliver(_event(), None, {})
    assert info.value.retryable is retryable and info.value.retry_after == retry_after
    assert str(status) in str(info.value) and TOKEN not in str(info.value)
    actor.close()


def test_a_5xx_storm_is_retried_then_dead_lettered_and_4xx_is_not_retried(run_pipeline, gateway, caplog):
    """Every attempt fails: each event is tried max_attempts times, the breaker opens on the way (and lets
    probes through after its cooldown), and all events end in dead letters."""
    gateway.default = (502, {})
    rt = run_pipeline(SourceSpec("in", "webhook", {}), ActorSpec("hook", "webhook", {"url": gateway.url}),
                      retry=RetrySpec(max_attempts=3, backoff="fixed", initial_delay=0.01),
                      breaker=BreakerSpec(failure_threshold=5, cooldown=0.2))
    for i in range(4):
        assert post(rt.ingress_port, "/webhook/in", {"n": i})[0] == 200
    assert wait_until(lambda: rt.status()["dead_letters"] == 4)
    assert len(gateway.received) == 12                                # 3 attempts each
    assert "circuit breaker closed -> open" in caplog.text
    gateway.default = (422, {})
    assert post(rt.ingress_port, "/webhook/in", {"n": 9})[0] == 200
    assert wait_until(lambda: rt.status()["dead_letters"] == 5)
    assert len(gateway.received) == 13                                # a rejection is not retried


def test_an_actor_that_rejects_everything_opens_its_breaker(run_pipeline, gateway):
    """A 4xx is not retried, but it is a failure all the same: after ``failure_threshold`` rejections the
    breaker opens and the lane stops calling the target (the rest wait unacked, not in dead letters)."""
    gateway.default = (400, {})
    rt = run_pipeline(SourceSpec("in", "webhook", {}), ActorSpec("hook", "http", {"url": gateway.url}),
                      retry=RetrySpec(max_attempts=5, backoff="fixed", initial_delay=0.01),
                      breaker=BreakerSpec(failure_threshold=3, cooldown=3600))
    for i in range(6):
        assert post(rt.ingress_port, "/webhook/in", {"n": i})[0] == 200
    assert wait_until(lambda: rt.status()["routes"][0]["breaker"] == "open")
    assert wait_until(lambda: rt.status()["dead_letters"] == 3)
    time.sleep(0.3)                                                   # time for calls that should not come
    assert len(gateway.received) == 3 and rt.status()["dead_letters"] == 3
    assert not rt.healthy()[0]


def test_429_retry_after_is_honoured(run_pipeline, gateway):
    gateway.script = [(429, {"Retry-After": "1"})]
    rt = run_pipeline(SourceSpec("in", "webhook", {}), ActorSpec("hook", "http", {"url": gateway.url}),
                      retry=RetrySpec(max_attempts=3, backoff="fixed", initial_delay=0.01))
    assert post(rt.ingress_port, "/webhook/in", {"n": 1})[0] == 200
    assert wait_until(lambda: len(gateway.received) == 2)
    first, second = gateway.received
    assert second.at - first.at >= 1.0                                # not the route's 10 ms backoff
    assert wait_until(lambda: rt.status()["routes"][0]["delivered"] == 1)


@pytest.mark.parametrize("retry_after", ["86400", "Fri, 01 Jan 2100 00:00:00 GMT"])
def test_a_huge_retry_after_waits_only_max_retry_after(run_pipeline, gateway, retry_after):
    """A target asking for a day (in seconds or as a date) parks the lane for the route's max_retry_after."""
    gateway.script = [(429, {"Retry-After": retry_after})]
    rt = run_pipeline(SourceSpec("in", "webhook", {}), ActorSpec("hook", "http", {"url": gateway.url}),
                      retry=RetrySpec(max_attempts=3, backoff="fixed", initial_delay=0.01, max_retry_after=1.0))
    assert post(rt.ingress_port, "/webhook/in", {"n": 1})[0] == 200
    assert wait_until(lambda: len(gateway.received) == 2, timeout=60)
    first, second = gateway.received
    assert second.at - first.at >= 1.0                                # the capped wait, not the backoff
    assert wait_until(lambda: rt.status()["routes"][0]["delivered"] == 1)


def test_openclaw_wire_format_session_key_and_callback(gateway, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENCLAW_TOKEN", TOKEN)
    actor = OpenClawActor("oc", {"base_url": gateway.url, "auth_token_env": "OPENCLAW_TOKEN", "agent_id": "eng",
                                 "default_channel": "slack", "default_to": "#eng"}, base_dir=tmp_path)
    e = _event(pr_number=7, title="Fix")
    actor.deliver(e, "Review the PR.", {"session_key": "orgloop:gh:7", "deliver": True, "thread_id": "t-7"})
    got = gateway.received[0]
    assert got.path == "/hooks/agent" and got.headers["Authorization"] == f"Bearer {TOKEN}"
    body = got.json()
    assert body["sessionKey"] == "orgloop:gh:7" and body["agentId"] == "eng" and body["wakeMode"] == "now"
    assert body["deliver"] is True and body["channel"] == "slack" and body["to"] == "#eng"
    assert body["threadId"] == "t-7" and "model" not in body
    assert body["message"] == ("[gh] resource.changed (pull_request.opened) by alice\n\n"
                               "Context:\n  repo: acme/app\n\nPayload:\n  pr_number: 7\n  title: Fix\n\n"
                               "Instructions:\nReview the PR.")
    actor.deliver(e, None, {})
    assert gateway.received[1].json()["sessionKey"] == "orgloop:gh:resource.changed"
    # a callback session is tried first; when the gateway refuses it, the route's session is woken instead
    gateway.script = [(404, {})]
    cb = _event(meta={"openclaw_callback_session_key": "cb-1", "openclaw_callback_agent_id": "a2"})
    actor.deliver(cb, None, {"session_key": "route-key"})
    assert [(r.json()["sessionKey"], r.json()["agentId"]) for r in gateway.received[2:]] == [("cb-1", "a2"),
                                                                                          ("route-key", "eng")]
    actor.close()


def test_actor_secrets_stay_out_of_config_dumps_and_logs(gateway, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    gateway.default = (500, {})
    actor = HttpActor("hook", {"url": gateway.url, "auth": {"type": "bearer", "token": TOKEN},
                               "sign_secret": "sign-secret-xyz"}, base_dir=tmp_path)
    with pytest.raises(DeliveryError) as info:
        actor.deliver(_event(), None, {})
    actor.close()
    dumped = repr(actor.config) + json.dumps(actor.config.model_dump(mode="json"))
    for secret in (TOKEN, "sign-secret-xyz"):
        assert secret not in dumped and secret not in str(info.value) and secret not in caplog.text


def test_webhook_to_openclaw_through_the_pipeline(run_pipeline, gateway, monkeypatch):
    """A post to the ingress ends at the fake gateway with the route's templated session key and prompt."""
    monkeypatch.setenv("OC_TOKEN", TOKEN)
    rt = run_pipeline(SourceSpec("in", "webhook", {}),
                      ActorSpec("oc", "openclaw", {"base_url": gateway.url, "auth_token_env": "OC_TOKEN"}),
                      config={"session_key": "orgloop:deploy:{{payload.service}}", "wake_mode": "next-heartbeat"},
                      prompt="Check the deploy.")
    assert post(rt.ingress_port, "/webhook/in", {"type": "deploy", "service": "api"})[0] == 200
    assert wait_until(lambda: len(gateway.received) == 1)
    body = gateway.received[0].json()
    assert body["sessionKey"] == "orgloop:deploy:api" and body["wakeMode"] == "next-heartbeat"
    assert body["message"].startswith("[in] resource.changed (deploy)")
    assert body["message"].endswith("Instructions:\nCheck the deploy.")
    assert gateway.received[0].headers["Authorization"] == f"Bearer {TOKEN}"
