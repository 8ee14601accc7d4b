"""``orgloop top`` and ``orgloop tap`` against a running daemon (subprocesses), and the tap's guarantees in
process: filters, masking, a slow reader drops (and counts) instead of holding the pipeline, and an
untapped router offers nothing."""
from __future__ import annotations

import json
import select
import subprocess
import sys
import time

from support.pipeline import wait_until

from orgloop.control.client import request, stream
from orgloop.control.tap import TapHub, TapSubscription, mask_secrets


def test_top_once_json_reports_rates_queues_lag_breakers_and_dead_letters(daemon):
    r = daemon.orgloop("top", "-p", str(daemon.project), "--once", "--interval", "1500ms", "-o", "json")
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["pid"] == daemon.record["pid"] and view["healthy"] is True and view["interval"] >= 1.5
    (source,) = view["sources"]
    assert source["id"] == "heartbeat" and source["events"] > 0
    assert 1 <= source["rate"] <= 20                          # the starter's generator emits 5/s
    (route,) = view["routes"]
    assert route["name"] == "heartbeat-to-inbox" and route["actor"] == "inbox" and route["breaker"] == "closed"
    assert {"rate", "failed_rate", "queue_depth", "dead_lettered", "delivered"} <= set(route)
    assert view["wal"]["lag"] >= 0 and view["wal"]["bytes_used"] > 0 and view["dead_letters"] == 0
    # human form, not on a terminal: tab-separated tables, no escape sequences
    r = daemon.orgloop("top", "-p", str(daemon.project), "--once", "--interval", "200ms")
    assert r.returncode == 0 and "\x1b" not in r.stdout
    assert "route\tactor\tdelivered/s" in r.stdout and "heartbeat-to-inbox\tinbox\t" in r.stdout


def test_top_and_tap_exit_3_when_not_running(daemon):
    assert daemon.orgloop("stop", "-p", str(daemon.project)).returncode == 0
    for args in (("top", "--once"), ("tap", "--limit", "1")):
        r = daemon.orgloop(*args, "-p", str(daemon.project))
        assert r.returncode == 3 and "not running" in r.stderr, (args, r.returncode, r.stderr)


def test_tap_prints_live_events_with_filters(daemon):
    p = str(daemon.project)
    r = daemon.orgloop("tap", "-p", p, "--limit", "3", timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 3
    for item in lines:
        assert item["route"] == "heartbeat-to-inbox" and item["actor"] == "inbox" and isinstance(item["seq"], int)
        assert item["event"]["source"] == "heartbeat" and item["event"]["type"] == "resource.changed"
    assert [x["seq"] for x in lines] == sorted(x["seq"] for x in lines)
    r = daemon.orgloop("tap", "-p", p, "--route", "heartbeat-to-inbox", "--source", "heartbeat",
                       "--type", "resource.changed", "--limit", "2", timeout=60)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    # a filter that matches nothing prints nothing (the tap ends when the runtime stops)
    child = subprocess.Popen([sys.executable, "-m", "orgloop", "tap", "-p", p, "--type", "no.such.type"],
                             env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: _taps(daemon) == 1)
        time.sleep(1.0)                                  # ~5 heartbeat events pass meanwhile
        assert daemon.orgloop("stop", "-p", p).returncode == 0
        out, err = child.communicate(timeout=30)
        assert out == "" and child.returncode == 3 and "not running" in err
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def _taps(daemon) -> int:
    try:
        return request(daemon.record["control_socket"], "GET", "/status").get("taps", 0)
    except Exception:
        return -1


def test_tap_refuses_an_unknown_route_or_source_as_a_usage_error(daemon):
    r = daemon.orgloop("tap", "-p", str(daemon.project), "--route", "nope")
    assert r.returncode == 64 and "no route 'nope'" in r.stderr and "heartbeat-to-inbox" in r.stderr


def test_a_tap_client_that_goes_away_is_unsubscribed(daemon):
    sock = daemon.record["control_socket"]
    it = stream(sock, "/tap")
    assert next(it) == {"tap": "subscribed"}
    assert _taps(daemon) == 1
    it.close()                                           # closes the connection
    assert wait_until(lambda: _taps(daemon) == 0)


# --------------------------------------------------------------------------- in process
class _Route:
    def __init__(self, name, actor="a"):
        self.name = name
        self.spec = type("S", (), {"actor": actor})()


def test_filters_and_masking():
    sub = TapSubscription(route="r1", source="s", event_type="t")
    ev = {"source": "s", "type": "t", "payload": {"api_token": "hunter2", "nested": [{"password": "x"}], "n": 1}}
    sub.offer([(1, ev, _Route("r1")), (2, ev, _Route("r2")), (3, {**ev, "type": "u"}, _Route("r1")),
               (4, {**ev, "source": "z"}, _Route("r1"))])
    (line,) = sub.take(0)
    item = json.loads(line)
    assert item["seq"] == 1 and item["route"] == "r1"
    assert item["event"]["payload"] == {"api_token": "***", "nested": [{"password": "***"}], "n": 1}
    assert "hunter2" not in line.decode() and ev["payload"]["api_token"] == "hunter2"   # the event is untouched
    assert mask_secrets([{"Authorization_KEY": 1}]) == [{"Authorization_KEY": "***"}]


def test_a_slow_reader_drops_and_counts_and_never_blocks_the_offer():
    hub = TapHub()
    sub = hub.subscribe(TapSubscription(capacity=10))
    items = [(i, {"source": "s", "type": "t", "i": i}, _Route("r")) for i in range(25)]
    hub.offer(items)                                     # nobody reads: returns at once regardless
    assert len(sub.lines) == 10 and sub.dropped == 15
    assert [json.loads(x)["seq"] for x in sub.take(0)] == list(range(10))
    hub.offer(items[:3])
    assert len(sub.take(0)) == 3 and sub.dropped == 15
    hub.unsubscribe(sub)
    assert hub.subscribers == () and sub.closed


def test_a_tap_client_that_stops_reading_does_not_hold_the_pipeline(tmp_path):
    """A real runtime, a tap connection that never reads: events keep flowing to the actor, and the
    runtime counts what the tap missed."""
    from orgloop.control.paths import socket_path
    from orgloop.runtime import Runtime
    from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec

    count = 20_000
    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": count, "payload_size": 512},
                                           poll_interval=0.01)],
                       actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
                       routes=[RouteSpec("all", "gen", "sink", delivery=DeliverySpec(queue_policy="block"))],
                       data_dir=tmp_path / "data", base_dir=tmp_path, control_socket=socket_path(tmp_path / "data"))
    rt = Runtime(spec).start()
    try:
        conn = _stalled_tap(rt.control_socket)
        assert wait_until(lambda: len(rt.taps.subscribers) == 1)
        assert wait_until(lambda: rt.tracker.acked == count, timeout=120)
        (sub,) = rt.taps.subscribers
        assert sub.dropped > 0 and sub.dropped + len(sub.lines) <= count
        assert rt.status()["taps"] == 1
        conn.close()
    finally:
        rt.stop()


def _stalled_tap(path):
    """A tap connection with a tiny receive buffer that reads only the response head."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(path))
    s.sendall(b"GET /tap HTTP/1.0\r\n\r\n")
    assert select.select([s], [], [], 10)[0]
    s.recv(64)
    return s


def test_wal_data_bytes_count_records_not_preallocated_segments(tmp_path, impl):
    from orgloop.wal import Wal
    from orgloop.wal.format import frame_size, mark_size

    def marks(extra: int) -> int:
        """How many durable marks (one per write round, format 2) make up the bytes beyond the records."""
        assert extra >= 0 and extra % mark_size(enc) == 0, extra
        return extra // mark_size(enc)

    with Wal(tmp_path / "wal", segment_size=64 << 10, implementation=impl) as wal:
        enc = wal._enc
        records = [b"x" * 100] * 50
        wal.append_many(records)
        st = wal.stats()
        assert st["bytes"] == 64 << 10 and 1 <= marks(st["data_bytes"] - 50 * frame_size(100, enc)) <= 2
        wal.rotate()                                           # sealed where it ended, not at its capacity
        wal.append_many(records[:10])
        st = wal.stats()
        assert st["segments"] == 2 and 2 <= marks(st["data_bytes"] - 60 * frame_size(100, enc)) <= 4


def test_an_untapped_router_offers_nothing(tmp_path):
    """Nobody taps: the hub is never called (the router's only cost is one test per batch)."""
    from orgloop.runtime import Runtime
    from orgloop.spec import ActorSpec, RouteSpec, RuntimeSpec, SourceSpec

    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": 500}, poll_interval=0.01)],
                       actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
                       routes=[RouteSpec("all", "gen", "sink")], data_dir=tmp_path / "data", base_dir=tmp_path)
    rt = Runtime(spec)
    calls = []
    rt.taps.offer = lambda items: calls.append(len(items))      # type: ignore[method-assign]
    rt.start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 500)
        assert calls == []
    finally:
        rt.stop()
