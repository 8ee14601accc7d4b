"""The control endpoint against a real runtime: the fsync histogram and WAL gauges, and /healthz when the
log really breaks (its file descriptor replaced by a read-only one, so the next write fails)."""
import json
import os
import re
import urllib.error

import pytest
from support.pipeline import fetch, wait_until

from orgloop.errors import WalError
from orgloop.event import new_event
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, LoggerSpec, RouteSpec, RuntimeSpec, SourceSpec


def _runtime(tmp_path, count=200):
    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": count}, poll_interval=0.05)],
                       actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
                       routes=[RouteSpec("all", "gen", "sink", delivery=DeliverySpec(queue_policy="block"))],
                       data_dir=tmp_path / "data", base_dir=tmp_path, control_port=0,
                       bus_options={"segment_size": 64 << 10})
    return Runtime(spec).start()


def _samples(text: str, name: str) -> list[tuple[str, float]]:
    return [(m.group(1) or "", float(m.group(2)))
            for m in re.finditer(rf"^{name}(?:\{{(.*)\}})? (\S+)$", text, re.M)]


def test_metrics_report_the_fsync_histogram_and_wal_lag_and_bytes(tmp_path):
    rt = _runtime(tmp_path)
    try:
        assert wait_until(lambda: rt.tracker.acked == 200)
        text = fetch(f"http://127.0.0.1:{rt._control.port}/metrics").decode()
        ws = rt.bus.wal.stats()
        buckets = _samples(text, "orgloop_wal_fsync_seconds_bucket")
        counts = [v for _l, v in buckets]
        assert buckets[-1][0] == 'le="+Inf"' and counts == sorted(counts)      # cumulative
        (_, count), = _samples(text, "orgloop_wal_fsync_seconds_count")
        (_, total), = _samples(text, "orgloop_wal_fsync_seconds_sum")
        assert counts[-1] == count >= 1 and total > 0 and count <= ws["syncs"]
        (_, wal_bytes), = _samples(text, "orgloop_wal_bytes")
        assert wal_bytes == ws["bytes"] > 0
        (_, lag), = _samples(text, "orgloop_wal_lag")
        assert 0 <= lag <= 200
        assert wait_until(lambda: _samples(fetch(f"http://127.0.0.1:{rt._control.port}/metrics").decode(),
                                           "orgloop_wal_lag") == [("", 0.0)])
    finally:
        rt.stop()


def test_healthz_turns_red_when_the_log_breaks_and_stays_red(tmp_path):
    rt = _runtime(tmp_path, count=50)
    base = f"http://127.0.0.1:{rt._control.port}"
    try:
        assert wait_until(lambda: rt.tracker.acked == 50)
        assert json.loads(fetch(base + "/healthz")) == {"ok": True, "problems": []}
        wal = rt.bus.wal
        ro = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(ro, wal._fd)                       # the active segment's fd now refuses writes
        finally:
            os.close(ro)
        with pytest.raises(WalError, match="write failed"):
            rt.bus.publish(new_event("gen", "resource.changed", {"n": -1}))
        for _ in range(2):                             # and it stays red: a failed log never recovers in place
            with pytest.raises(urllib.error.HTTPError) as err:
                fetch(base + "/healthz")
            body = json.loads(err.value.read())
            err.value.close()
            assert err.value.code == 503 and not body["ok"]
            assert any(p.startswith("wal: WAL write failed") for p in body["problems"]), body
        status = json.loads(fetch(base + "/status"))
        assert status["healthy"] is False and status["wal"]["failed"]
        assert "orgloop_healthy 0" in fetch(base + "/metrics").decode()
    finally:
        rt.stop()


def test_metrics_count_the_log_entries_the_hub_dropped(tmp_path):
    """The plumbing from the log hub's drop counter to /metrics (the hub's dropping itself is tested in
    tests/loggers: it drops only for a stuck logger and says so in a logger.dropped entry)."""
    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": 5}, poll_interval=0.05)],
                       actors=[ActorSpec("sink", "file", {"path": "out.jsonl"})],
                       routes=[RouteSpec("all", "gen", "sink")],
                       loggers=[LoggerSpec("file", "file", {"path": "log.jsonl"})],
                       data_dir=tmp_path / "data", base_dir=tmp_path, control_port=0)
    rt = Runtime(spec).start()
    try:
        url = f"http://127.0.0.1:{rt._control.port}/metrics"
        assert _samples(fetch(url).decode(), "orgloop_log_entries_dropped_total") == [("", 0.0)]
        rt.hub.dropped += 7
        assert _samples(fetch(url).decode(), "orgloop_log_entries_dropped_total") == [("", 7.0)]
    finally:
        rt.stop()
