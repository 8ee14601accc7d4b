"""A hanging script transform holds only its own route: the fast route next to it keeps delivering."""
from __future__ import annotations

import json
import os
import time

import pytest
from support.pipeline import wait_until

from orgloop.runtime import Runtime
from orgloop.spec import (ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec, TransformRef,
                          TransformSpec)

HANG = """#!/usr/bin/env python3
import os, sys, time
open(os.environ["PIDS"], "a").write(f"{os.getpid()}\\n")
time.sleep(120)
"""


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] == "Z"
    except FileNotFoundError:
        return True


def test_a_hanging_script_delays_only_its_own_route_and_is_ended_at_stop(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    script.chmod(0o755)
    pids = tmp_path / "pids.txt"
    os.environ["PIDS"] = str(pids)
    spec = RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 200}, poll_interval=0.05)],
        actors=[ActorSpec("fast", "file", {"path": "fast.jsonl"}), ActorSpec("slow", "file", {"path": "slow.jsonl"})],
        transforms=[TransformSpec("hang", "script", "script", {"script": str(script), "timeout_ms": 120_000},
                                  base_dir=tmp_path)],
        routes=[RouteSpec("fast", "gen", "fast", delivery=DeliverySpec(queue_policy="block")),
                RouteSpec("slow", "gen", "slow", transforms=[TransformRef("hang")],
                          delivery=DeliverySpec(queue_policy="block"))],
        data_dir=tmp_path / "data", base_dir=tmp_path, bus="filewal")
    rt = Runtime(spec).start()
    try:
        fast = tmp_path / "fast.jsonl"
        assert wait_until(lambda: fast.exists() and len(fast.read_text().splitlines()) == 200, timeout=30), \
            "the fast route waited for the hanging script"
        assert not (tmp_path / "slow.jsonl").exists() or not (tmp_path / "slow.jsonl").read_text()
        assert rt.tracker.acked == 0                 # every event still waits for the slow route
        assert wait_until(lambda: pids.exists() and pids.read_text().strip() != "", timeout=30)   # it runs
    finally:
        t0 = time.monotonic()
        rt.stop(drain_timeout=0.5)
        stop_took = time.monotonic() - t0
        del os.environ["PIDS"]
    assert stop_took < 20
    for pid in map(int, pids.read_text().split()):  # the script was ended with the runtime
        assert wait_until(lambda: gone(pid), timeout=5)
    ids = {json.loads(x)["id"] for x in (tmp_path / "fast.jsonl").read_text().splitlines()}
    assert len(ids) == 200


class DiesOnce:
    """A transform that may block (so it runs on its route's own thread) and kills that thread once."""

    blocking = True
    died = False

    def __init__(self, name, config, *, base_dir, state_dir):
        pass

    def apply(self, event, ctx):
        if event["payload"].get("n") == 3 and not DiesOnce.died:
            DiesOnce.died = True
            raise SystemExit("a thread-killing failure")      # not an Exception: the route's thread dies
        return [event]

    def close(self):
        pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # the death is the point
def test_a_dead_transform_thread_turns_health_red_and_is_restarted_without_losing_its_events(tmp_path):
    from orgloop import plugins

    plugins.register("transforms", "test-dies-once", DiesOnce)
    spec = RuntimeSpec(
        sources=[SourceSpec("gen", "generator", {"count": 20}, poll_interval=0.02)],
        actors=[ActorSpec("out", "file", {"path": "out.jsonl"})],
        transforms=[TransformSpec("dies", "package", "test-dies-once")],
        routes=[RouteSpec("r", "gen", "out", transforms=[TransformRef("dies")])],
        data_dir=tmp_path / "data", base_dir=tmp_path, bus="filewal")
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: DiesOnce.died, timeout=30)
        assert wait_until(lambda: any("transform thread" in p for p in rt.healthy()[1]), timeout=30)
        out = tmp_path / "out.jsonl"
        assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 20, timeout=30)
        assert wait_until(lambda: rt.tracker.acked == 20, timeout=30)
        assert rt.healthy() == (True, [])
    finally:
        rt.stop()
    got = sorted(json.loads(x)["payload"]["n"] for x in out.read_text().splitlines())
    assert sorted(set(got)) == list(range(20))
