"""The runtime under real crashes and real signals (child processes; see ``pipeline_child.py``).

Crash tests: a child runs file source -> FileWalBus (sync=always) -> route -> flaky fsyncing sink. The
parent SIGKILLs it at random moments, round after round in the same data directory, then lets a last
run drain everything. The input holds every event once plus resends of some (the same event, same id,
a few lines later), as a source re-sending after a timeout would.

* at least once: every input event reaches the sink; nothing is dead-lettered; without dedup the
  resends reach it too (so the input really has duplicates).
* with ``dedup``: no event reaches the sink twice within one run, and an event whose dedup mark was
  durable (read from the LMDB state after each kill) never reaches it again. The only repeats left are
  events the sink took in the moment between its write and the mark's commit before a kill; the sink
  treats a repeated event id as already applied (idempotent by id), so its effect is exactly once.

Signal tests: the first SIGTERM/SIGINT stops cleanly (exit 0): given a long enough ``drain_timeout``
everything published is delivered first; otherwise what was delivered is acked and what was not comes
back on the next start, nothing twice. A second signal exits at once (exit 130) without waiting for the
drain, and still loses nothing.
"""
from __future__ import annotations

import inspect
import json
import math
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import lmdb
import pytest
from support.pipeline import wait_until

from orgloop.delivery.dlq import read_dead_letters
from orgloop.transforms.dedup import DedupTransform
from orgloop.wal import Wal

CHILD = Path(__file__).with_name("pipeline_child.py")
ROUTE, DEDUP = "feed-to-sink", "once"     # as in pipeline_child.py
ROUNDS = 6
pytestmark = pytest.mark.crash


def make_input(path: Path, n: int, resend_every: int | None = 5, resend_gap: int = 20) -> tuple[list[dict], set[str]]:
    """Write ``n`` events (deterministic ids) plus a resend of every ``resend_every``-th one (None: none)
    ``resend_gap`` lines later; returns the unique events and the ids that were resent."""
    events = [{"id": f"evt_{i:016x}", "timestamp": "2026-01-01T00:00:00Z", "source": "feed",
               "type": "resource.changed", "provenance": {"platform": "test"}, "payload": {"n": i},
               "trace_id": f"trc_{i:016x}"} for i in range(n)]
    lines: list[tuple[float, dict]] = [(float(i), e) for i, e in enumerate(events)]
    resent = [e for i, e in enumerate(events) if resend_every and i % resend_every == 0]
    lines += [(e["payload"]["n"] + resend_gap + 0.5, e) for e in resent]
    path.write_text("".join(json.dumps(e) + "\n" for _k, e in sorted(lines, key=lambda kv: kv[0])))
    return events, {e["id"] for e in resent}


class Child:
    """One child process; stdout lines are collected by a thread, stderr goes to a file."""

    def __init__(self, tmp_path: Path, cfg: dict) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.stderr_path = tmp_path / f"child-{cfg['run']}.err"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, str(CHILD), json.dumps(cfg)], stdout=subprocess.PIPE,
                                         stderr=err, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def expect(self, word: str, timeout: float = 60.0) -> None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self._fail(f"child did not say {word!r} within {timeout}s")
        if line != word:
            self._fail(f"child said {line!r}, expected {word!r}")

    def _fail(self, why: str) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)   # faulthandler: every thread's stack to the stderr file
            time.sleep(0.5)
            self.proc.kill()
        self.proc.wait()
        raise AssertionError(f"{why}; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-4000:]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)         # only ever the pid we started

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"child did not exit within {timeout}s")
        finally:
            self._reader.join(timeout=5)
            self.proc.stdout.close()


def sink_lines(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(i, int(r)) for i, r in (line.split() for line in path.read_text().splitlines())]


def durable_marks(data: Path, events: list[dict]) -> set[str]:
    """Ids whose dedup mark is committed in the transform's LMDB state (read after the child died)."""
    state = data / "state" / "transforms" / DEDUP
    if not (state / "data.mdb").exists():
        return set()
    keyer = DedupTransform(DEDUP, {}, state_dir=None)
    by_key = {keyer.key_of(e, ROUTE): e["id"] for e in events}
    env = lmdb.open(str(state), readonly=True, lock=False, subdir=True)
    try:
        with env.begin() as txn:
            return {by_key[k] for k in txn.cursor().iternext(values=False)}
    finally:
        env.close()


@pytest.mark.parametrize("dedup", [False, True], ids=["at-least-once", "dedup"])
def test_sigkill_mid_stream_loses_nothing_and_dedup_repeats_nothing_durable(tmp_path, dedup):
    events, resent = make_input(tmp_path / "in.jsonl", 3000)
    ids = {e["id"] for e in events}
    sink = tmp_path / "sink.txt"
    base = {"data": str(tmp_path / "data"), "input": str(tmp_path / "in.jsonl"), "sink": str(sink),
            "dedup": dedup, "fail_rate": 0.2, "delay": 0.001}
    rng = random.Random(20261201 + dedup)
    marks_after: list[set[str]] = []           # durable marks after each kill
    for run in range(ROUNDS):
        child = Child(tmp_path, {**base, "run": run})
        child.expect("ready")
        time.sleep(rng.uniform(0.1, 0.7))
        child.signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        if dedup:
            marks_after.append(durable_marks(tmp_path / "data", events))
    before_final = {i for i, _r in sink_lines(sink)}
    child = Child(tmp_path, {**base, "run": ROUNDS, "drain": True})
    child.expect("ready")
    child.expect("drained")
    assert child.wait(30) == 0, child.stderr()

    lines = sink_lines(sink)
    delivered = [i for i, _r in lines]
    runs_with_progress = {r for _i, r in lines}
    assert set(delivered) == ids, f"lost: {sorted(ids - set(delivered))[:5]}"
    assert len(before_final) < len(ids), "the kills should land before the input is done"
    assert len(runs_with_progress - {ROUNDS}) >= 3, "most killed runs should have delivered something"
    assert list(read_dead_letters(tmp_path / "data" / "dlq")) == []
    if not dedup:
        times = Counter(delivered)
        assert all(times[i] >= 2 for i in resent)             # without dedup the resends get through
        return
    per_run: dict[int, list[str]] = {}
    for i, r in lines:
        per_run.setdefault(r, []).append(i)
    for r, got in per_run.items():
        assert len(got) == len(set(got)), f"run {r} delivered an event twice"
    for r, marks in enumerate(marks_after):
        later = {i for i, rr in lines if rr > r}
        assert not later & marks, f"after run {r}: events with a durable dedup mark came back"
    assert durable_marks(tmp_path / "data", events) == ids
    repeats = len(delivered) - len(ids)
    assert repeats <= sum(len(per_run.get(r, [])) for r in range(ROUNDS))   # only deliveries of killed runs


def _signal_cfg(tmp_path: Path, run: int, **kw) -> dict:
    return {"data": str(tmp_path / "data"), "input": str(tmp_path / "in.jsonl"), "sink": str(tmp_path / "sink.txt"),
            "run": run, **kw}


def _drain_rest(tmp_path: Path, run: int) -> None:
    child = Child(tmp_path, _signal_cfg(tmp_path, run, drain=True))
    child.expect("ready")
    child.expect("drained")
    assert child.wait(30) == 0, child.stderr()


@pytest.mark.parametrize(("sig", "drain_timeout"), [(signal.SIGTERM, 0.3), (signal.SIGINT, 0.3), (signal.SIGTERM, 30)],
                         ids=["SIGTERM-persists", "SIGINT-persists", "SIGTERM-drains"])
def test_a_signal_stops_cleanly_and_unfinished_events_come_back_once(tmp_path, sig, drain_timeout):
    events, _ = make_input(tmp_path / "in.jsonl", 300, resend_every=None)
    sink = tmp_path / "sink.txt"
    child = Child(tmp_path, _signal_cfg(tmp_path, 0, signals=True, delay=0.01, drain_timeout=drain_timeout))
    child.expect("ready")
    assert wait_until(lambda: len(sink_lines(sink)) >= 20)
    child.signal(sig)
    child.expect("stopped")
    assert child.wait(60) == 0, child.stderr()
    first = [i for i, _r in sink_lines(sink)]
    with Wal(tmp_path / "data" / "wal", segment_size=64 << 10) as wal:
        stats = wal.stats()
    unacked = stats["unacked"]
    assert len(first) + unacked == stats["last_seq"]     # each published event delivered and acked, or kept unacked
    if drain_timeout < 1:
        assert 20 <= len(first) < 300, "the stop should interrupt the stream"
    else:
        assert unacked == 0, "a long enough drain delivers everything published"
    _drain_rest(tmp_path, 1)
    second = [i for i, r in sink_lines(sink) if r == 1]
    assert sorted(first + second) == sorted(e["id"] for e in events)     # each once: acked work stayed acked


def test_a_second_signal_exits_at_once_and_loses_nothing(tmp_path):
    events, _ = make_input(tmp_path / "in.jsonl", 50, resend_every=None)
    child = Child(tmp_path, _signal_cfg(tmp_path, 0, signals=True, hang=True, drain_timeout=600))
    child.expect("ready")
    assert wait_until(lambda: (tmp_path / "data" / "wal").exists())
    child.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert child.proc.poll() is None, "the first signal waits for the drain (the actor hangs)"
    child.signal(signal.SIGTERM)
    assert child.wait(30) == 130
    _drain_rest(tmp_path, 1)
    assert sorted(i for i, _r in sink_lines(tmp_path / "sink.txt")) == sorted(e["id"] for e in events)


def test_after_sigkill_only_in_flight_work_and_one_ack_flush_interval_come_back(tmp_path):
    """Acks follow each delivery (docs/architecture.md "The duplicate window"): with a slow actor (100 ms per
    event, one worker) a SIGKILL makes at most the delivery in flight plus the deliveries of one ack flush
    interval come back after the restart, however large the worker's batch was."""
    delay = 0.1
    flush = inspect.signature(Wal).parameters["ack_flush_interval"].default
    bound = 1 + math.ceil(flush / delay) + 1     # in flight + one flush interval (+1: one finishing at its edge)
    events, _ = make_input(tmp_path / "in.jsonl", 200, resend_every=None)
    sink = tmp_path / "sink.txt"
    base = {"data": str(tmp_path / "data"), "input": str(tmp_path / "in.jsonl"), "sink": str(sink), "delay": delay}
    duplicates = []
    for run in range(3):
        child = Child(tmp_path, {**base, "run": run})
        child.expect("ready")
        before = len(sink_lines(sink))
        assert wait_until(lambda: len(sink_lines(sink)) >= before + 12, timeout=60)
        child.signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
        if run:
            earlier = {i for i, r in sink_lines(sink) if r < run}
            duplicates.append(sum(1 for i, r in sink_lines(sink) if r == run and i in earlier))
    child = Child(tmp_path, {**base, "delay": 0.0, "run": 3, "drain": True})
    child.expect("ready")
    child.expect("drained")
    assert child.wait(30) == 0, child.stderr()
    lines = sink_lines(sink)
    earlier = {i for i, r in lines if r < 3}
    duplicates.append(sum(1 for i, r in lines if r == 3 and i in earlier))
    print(f"duplicates after each of 3 kills: {duplicates} (bound {bound}: in flight + {flush * 1000:.0f} ms of acks)")
    assert {i for i, _r in lines} == {e["id"] for e in events}
    assert all(d <= bound for d in duplicates), duplicates
