"""Pollers inside a running runtime: a failing API never stops the runtime and never moves a cursor; a
source's own pace (poll_delay) replaces the poll interval."""
from __future__ import annotations

import json
import time

import pytest

from fakes.github import FakeGitHub
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, RouteSpec, RuntimeSpec, SourceSpec
from support.pipeline import wait_until

TOKEN = "ghp_runtimeT0ken"


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_failing_api_leaves_the_runtime_running_and_the_cursor_in_place(tmp_path):
    with FakeGitHub(token=TOKEN) as gh:
        spec = RuntimeSpec(
            sources=[SourceSpec("gh", "github", {"repo": "acme/w", "token": TOKEN, "api_url": gh.url,
                                                 "events": ["issue_comment"]}, poll_interval=0.05)],
            actors=[ActorSpec("out", "file", {"path": "out.jsonl"})], routes=[RouteSpec("r", "gh", "out")],
            bus="memory", base_dir=tmp_path)
        rt = Runtime(spec).start()
        try:
            assert wait_until(lambda: rt.checkpoints.get("gh") is not None)
            src = rt._source_threads["gh"][2]
            before = rt.checkpoints.get("gh")
            gh.fail_next(1, 502)                   # the next poll fails: a 5 s pause
            gh.open_pull("acme/w", 1, "alice", "x")
            gh.add_issue_comment("acme/w", 1, "bob", "during the storm")
            assert wait_until(lambda: src.gate.failures == 1)
            requests = len(gh.requests)
            time.sleep(1.0)                        # paused: polls happen, requests do not
            assert len(gh.requests) == requests and rt.checkpoints.get("gh") == before
            assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) == 1, timeout=20)
            assert _lines(tmp_path / "out.jsonl")[0]["payload"]["comment_body"] == "during the storm"
            assert src.gate.failures == 0 and rt.status()["sources"][0]["checkpoint"] != before
        finally:
            rt.stop()


def test_a_cron_schedule_fires_on_its_ticks_not_at_the_poll_interval(tmp_path):
    spec = RuntimeSpec(
        sources=[SourceSpec("tick", "cron", {"schedules": [{"name": "s", "cron": "every 1s"}], "timezone": "UTC"},
                            poll_interval=300)],
        actors=[ActorSpec("out", "file", {"path": "out.jsonl"})], routes=[RouteSpec("r", "tick", "out")],
        bus="memory", base_dir=tmp_path)
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) >= 2, timeout=20)
    finally:
        rt.stop()
    fires = [e["payload"]["fire_time"] for e in _lines(tmp_path / "out.jsonl")]
    assert len(set(fires)) == len(fires)                   # no tick twice
