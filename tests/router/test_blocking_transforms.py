"""A hanging script transform holds only its own route: the fast route next to it keeps delivering."""
from __future__ import annotations

import json
import os
import time

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
