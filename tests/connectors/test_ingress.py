"""The shared ingress listener over real HTTP on 127.0.0.1: signatures, limits, refusals, slow clients,
floods, and "200 only once the event is durable"."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from orgloop.connectors.ingress import Ingress, PushConfig, PushSourceBase, ingress_address, sign
from orgloop.connectors.webhook import WebhookSource
from orgloop.errors import OrgloopError
from orgloop.spec import SourceSpec
from orgloop.wal import Wal
from support.fake_gateway import post
from support.pipeline import wait_until

SECRET = "s3cret-value-for-tests"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_signed_webhook_becomes_a_durable_event_and_is_delivered(run_pipeline, tmp_path):
    rt = run_pipeline(SourceSpec("hooks", "webhook", {"secret": SECRET, "path": "/in/deploys"}))
    body = json.dumps({"type": "deployment", "status": "ok"}).encode()
    status, answer = post(rt.ingress_port, "/webhook/hooks", body, {"X-Hub-Signature-256": sign(SECRET, body)})
    assert status == 200 and answer["ok"] is True and answer["event_id"].startswith("evt_")
    status, second = post(rt.ingress_port, "/in/deploys", body, {"X-Signature": sign(SECRET, body)})
    assert status == 200                                               # the configured path works too
    assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) == 2)
    first = _lines(tmp_path / "out.jsonl")[0]
    assert first["id"] == answer["event_id"] and first["type"] == "resource.changed"
    assert first["provenance"] == {"platform": "webhook", "platform_event": "deployment"}
    assert first["payload"] == {"type": "deployment", "status": "ok"}


@pytest.mark.parametrize("headers, error", [
    ({}, "missing signature"),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, "invalid signature"),
    ({"X-Hub-Signature-256": sign("another-secret", b'{"a":1}')}, "invalid signature"),
])
def test_wrong_or_missing_signature_is_401_and_creates_nothing(run_pipeline, headers, error):
    rt = run_pipeline(SourceSpec("hooks", "webhook", {"secret": SECRET}))
    status, answer = post(rt.ingress_port, "/webhook/hooks", b'{"a":1}', headers)
    assert status == 401 and answer == {"ok": False, "error": answer["error"]} and error in answer["error"]
    assert rt.events_published == 0


def test_unsigned_source_accepts_unsigned_posts_and_the_refusals_are_json(run_pipeline):
    rt = run_pipeline(SourceSpec("open", "webhook", {"max_body": "1KB"}))
    port = rt.ingress_port
    assert post(port, "/webhook/open", {"x": 1})[0] == 200
    assert post(port, "/webhook/open", b"{not json")[0] == 400
    status, answer = post(port, "/webhook/open", b"[1, 2]")
    assert status == 400 and "JSON object" in answer["error"]
    status, answer = post(port, "/webhook/open", b"x" * 2048)
    assert status == 413 and "at most 1024" in answer["error"]
    status, answer = post(port, "/webhook/open", b"<a/>", {"Content-Type": "application/xml"})
    assert status == 415 and "application/xml" in answer["error"]
    assert post(port, "/webhook/nobody", {"x": 1})[0] == 404
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/webhook/open")
    resp = conn.getresponse()
    assert resp.status == 405 and json.loads(resp.read())["ok"] is False
    conn.close()
    form = ("payload=" + quote(json.dumps({"type": "form"}))).encode()
    assert post(port, "/webhook/open", form, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 200
    assert rt.events_published == 2
    assert rt.status()["ingress"]["answers"] == {200: 2, 400: 2, 413: 1, 415: 1, 404: 1, 405: 1}


def test_oversize_body_is_refused_before_it_is_sent(run_pipeline):
    """413 comes from Content-Length alone: the client never has to upload the body."""
    rt = run_pipeline(SourceSpec("open", "webhook", {"max_body": 100}))
    with socket.create_connection(("127.0.0.1", rt.ingress_port), timeout=5) as s:
        s.sendall(b"POST /webhook/open HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n")
        answer = b"".join(iter(lambda: s.recv(4096), b""))     # the server answers and closes
    assert answer.startswith(b"HTTP/1.1 413") and b"Connection: close" in answer
    with socket.create_connection(("127.0.0.1", rt.ingress_port), timeout=5) as s:
        # one header line just over http.server's 65,536-byte limit, and nothing after it: the server reads all
        # we sent, so its close cannot turn into a reset that would discard the answer
        s.sendall(b"POST /webhook/open HTTP/1.1\r\nX-Long: " + b"a" * (65537 - len(b"X-Long: ")))
        answer = b"".join(iter(lambda: s.recv(4096), b""))     # until the server closes
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431") and json.loads(body)["ok"] is False   # http.server's own refusals too


class _Blocking(PushSourceBase):
    """A push source whose events carry a marker; used with a publish function the test controls."""

    def events(self, request):
        return [{"id": "evt_" + "0" * 16, "marker": request.json_object()["n"]}]


def _ingress(publish, **kw):
    return Ingress(publish, host="127.0.0.1", port=0, **kw).start()


def test_the_answer_waits_until_publish_returns():
    gate = threading.Event()
    published = []

    def publish(source_id, events):
        gate.wait(10)
        published.extend(events)

    ing = _ingress(publish)
    ing.mount(_Blocking("b", {}, base_dir=None))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ing.port, timeout=0.5)
        conn.request("POST", "/webhook/b", b'{"n": 1}', {"Content-Type": "application/json"})
        with pytest.raises(socket.timeout):
            conn.getresponse()          # not answered while the event is not stored
        gate.set()
        conn.sock.settimeout(10)
        resp = conn.getresponse()
        assert resp.status == 200 and published and published[0]["marker"] == 1
        conn.close()
    finally:
        ing.stop()


def test_a_failing_bus_gives_503_and_no_success():
    def publish(source_id, events):
        raise OSError("disk full")

    ing = _ingress(publish)
    ing.mount(_Blocking("b", {}, base_dir=None))
    try:
        status, answer = post(ing.port, "/webhook/b", {"n": 1})
        assert status == 503 and "could not be stored" in answer["error"]
    finally:
        ing.stop()


def test_a_slow_client_is_cut_off_at_the_read_deadline_and_others_are_served():
    """A client trickling its request (a byte well within the per-read timeout) still cannot hold a thread
    past the request deadline; meanwhile a normal client is served."""
    ing = _ingress(lambda sid, ev: None, read_timeout=0.6)
    ing.mount(_Blocking("b", {}, base_dir=None))
    request = (b"POST /webhook/b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: 200\r\n\r\n" + b" " * 200)
    closed_after = None
    try:
        with socket.create_connection(("127.0.0.1", ing.port), timeout=5) as s:
            t0 = time.monotonic()
            for i, byte in enumerate(request):
                if i == 3:                     # another client is served while this one trickles
                    assert post(ing.port, "/webhook/b", {"n": i})[0] == 200
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    closed_after = time.monotonic() - t0
                    break
                time.sleep(0.05)               # far within the per-read timeout: only the deadline can cut it
                if time.monotonic() - t0 > 8:
                    break
            else:
                pytest.fail("the server read the whole trickled request")
            if closed_after is None:
                assert s.recv(100) == b""      # the server shut the socket
                closed_after = time.monotonic() - t0
        assert closed_after < 8 and ing.cut_off >= 1
    finally:
        ing.stop()


@pytest.mark.slow
def test_a_bounded_flood_is_stored_completely(run_pipeline, tmp_path):
    """300 signed posts from 24 threads at once on a listener with 8 connection threads: the extra connections
    wait, every post is answered 200 (never a hang or a reset), and every answered event is in the WAL."""
    rt = run_pipeline(SourceSpec("hooks", "webhook", {"secret": SECRET}))
    rt._ingress._server._slots = threading.BoundedSemaphore(8)
    port = rt.ingress_port

    def one(i):
        body = json.dumps({"type": "flood", "n": i}).encode()
        return post(port, "/webhook/hooks", body, {"X-Hub-Signature-256": sign(SECRET, body)})

    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(one, range(300)))
    assert {s for s, _a in results} == {200}
    ids = {a["event_id"] for _s, a in results}
    assert len(ids) == 300 and rt.events_published == 300
    rt.stop(drain_timeout=2.0)
    wal = Wal(tmp_path / "data" / "wal")
    try:
        stored = {r["id"] for batch in wal.replay(unacked_only=False, decode=True) for r in batch.records}
    finally:
        wal.close()
    assert ids <= stored


def test_connections_beyond_the_thread_limit_wait_then_get_503():
    gate = threading.Event()
    ing = _ingress(lambda sid, ev: gate.wait(10), read_timeout=0.5, max_connections=1)
    ing.mount(_Blocking("b", {}, base_dir=None))
    try:
        holder = threading.Thread(target=post, args=(ing.port, "/webhook/b", {"n": 1}))
        holder.start()
        assert wait_until(lambda: ing._server._slots._value == 0)
        status, answer = post(ing.port, "/webhook/b", {"n": 2})
        assert status == 503 and "too many connections" in answer["error"]
        gate.set()
        holder.join(10)
        assert post(ing.port, "/webhook/b", {"n": 3})[0] == 200
    finally:
        gate.set()
        ing.stop()


def test_push_sources_are_mounted_and_unmounted_by_reconcile(run_pipeline):
    rt = run_pipeline(SourceSpec("a", "webhook", {}))
    port = rt.ingress_port
    rt.apply_sources([SourceSpec("b", "webhook", {"path": "/b-hooks"})], [])
    assert post(port, "/b-hooks", {"x": 1})[0] == 200
    rt.apply_sources([SourceSpec("b", "webhook", {"secret": SECRET})], ["b"])     # changed: remounted
    assert post(port, "/b-hooks", {"x": 1})[0] == 404
    assert post(port, "/webhook/b", {"x": 1})[0] == 401
    rt.apply_sources([], ["a"])
    assert post(port, "/webhook/a", {"x": 1})[0] == 404
    assert rt.ingress_port == port and [s.id for s in rt.spec.sources] == ["b"]


def test_ingress_port_comes_from_orgloop_port_then_the_project(monkeypatch):
    monkeypatch.delenv("ORGLOOP_PORT", raising=False)
    assert ingress_address(None, None) == ("127.0.0.1", 4800)
    assert ingress_address(None, 5000) == ("127.0.0.1", 5000)
    monkeypatch.setenv("ORGLOOP_PORT", "5100")
    assert ingress_address(None, 5000) == ("127.0.0.1", 5100)
    monkeypatch.setenv("ORGLOOP_PORT", "http")
    with pytest.raises(OrgloopError, match="ORGLOOP_PORT"):
        ingress_address()


def test_unsigned_sources_are_refused_beyond_loopback_and_paths_are_unique():
    ing = Ingress(lambda sid, ev: None, host="0.0.0.0", port=0)
    try:
        with pytest.raises(OrgloopError, match="no secret"):
            ing.mount(WebhookSource("open", {}, base_dir=None))
        ing.mount(WebhookSource("signed", {"secret": SECRET, "path": "/x"}, base_dir=None))
        with pytest.raises(OrgloopError, match="taken by source 'signed'"):
            ing.mount(WebhookSource("other", {"secret": SECRET, "path": "x/"}, base_dir=None))
    finally:
        ing._server.server_close()


def test_the_secret_never_reaches_logs_status_or_config_dumps(run_pipeline, caplog):
    caplog.set_level(logging.DEBUG)
    rt = run_pipeline(SourceSpec("hooks", "webhook", {"secret": SECRET}))
    post(rt.ingress_port, "/webhook/hooks", b'{"a": 1}', {"X-Hub-Signature-256": "sha256=00"})
    body = b'{"a": 2}'
    post(rt.ingress_port, "/webhook/hooks", body, {"X-Hub-Signature-256": sign(SECRET, body)})
    source = rt._push_sources["hooks"]
    dumped = json.dumps(rt.status(), default=str) + repr(source.config) + str(source.config.model_dump())
    assert SECRET not in dumped and SECRET not in caplog.text
    assert isinstance(PushConfig.model_fields["secret"].annotation, object)
