"""Dead letters as delivery records, replay to one route, halt, max_rate with retries, and the lane surviving
a dead-letter store that cannot be written or a worker that dies (issue 10, items 4 and 7)."""
import os
import shutil
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from support.pipeline import wait_until

from orgloop import plugins
from orgloop.cli import main
from orgloop.connectors import DeliveryError
from orgloop.runtime import Runtime
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, RetrySpec, RouteSpec, RuntimeSpec, SourceSpec,
                          TransformRef, TransformSpec)
from orgloop.transforms import TransformError


class Split:
    """Splits each event into two parts (payload.part 1 and 2); counts its calls."""

    calls = 0

    def __init__(self, name, config, *, base_dir, state_dir):
        pass

    def apply(self, event, ctx):
        Split.calls += 1
        return [{**event, "payload": {**event["payload"], "part": p}} for p in (1, 2)]

    def close(self):
        pass


class HaltOnOdd:
    def __init__(self, name, config, *, base_dir, state_dir):
        pass

    def apply(self, event, ctx):
        if event["payload"]["n"] % 2:
            raise TransformError(f"odd {event['payload']['n']}")
        return [event]

    def close(self):
        pass


class Picky:
    """Refuses events matching ``refuse`` (a payload key and value) while ``Picky.refusing`` is set; records
    what it takes, per actor, and when it was called."""

    refusing = True
    taken: dict[str, list[dict]] = {}
    calls: list[float] = []
    lock = threading.Lock()

    def __init__(self, actor_id, config, *, base_dir):
        self.id, self.config = actor_id, config
        Picky.taken.setdefault(actor_id, [])

    def deliver(self, event, prompt, config):
        with Picky.lock:
            Picky.calls.append(time.monotonic())
        key, value = self.config.get("refuse", (None, None))
        if Picky.refusing and key is not None and {**event, **event["payload"]}.get(key) == value:
            raise DeliveryError(f"refusing {key}={value}")
        if self.config.get("die_on") == event["payload"].get("n") and not Picky.died:
            Picky.died = True
            raise SystemExit("a worker-killing failure")      # not an Exception: the worker thread dies
        with Picky.lock:
            Picky.taken[self.id].append(event)

    def close(self):
        pass


Picky.died = False
plugins.register("transforms", "test-dl-split", Split)
plugins.register("transforms", "test-dl-halt-on-odd", HaltOnOdd)
plugins.register("actors", "test-dl-picky", Picky)


@pytest.fixture(autouse=True)
def _reset():
    Split.calls, Picky.refusing, Picky.taken, Picky.calls, Picky.died = 0, True, {}, [], False


def _spec(tmp_path, routes, transforms=(), actors=None, count=6, **kw):
    return RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": count}, poll_interval=0.02)],
                       actors=actors or [ActorSpec("a", "test-dl-picky", {"refuse": ("part", 2)}),
                                         ActorSpec("b", "test-dl-picky", {})],
                       routes=routes, transforms=list(transforms), data_dir=tmp_path / "data", base_dir=tmp_path,
                       bus_options={"segment_size": 1 << 20}, **kw)


ONCE = RetrySpec(max_attempts=1)


@pytest.mark.parametrize("while_running", [False, True], ids=["stopped", "running"])
def test_split_dedup_dead_letter_and_replay_deliver_every_part_once_to_that_route_only(tmp_path, while_running):
    """Replayed with the runtime stopped (the CLI writes to the bus's log) or running (the control socket's
    ``Runtime.replay_dead_letters``): the same outcome."""
    transforms = [TransformSpec("split", "package", "test-dl-split"),
                  TransformSpec("once", "package", "dedup", {"key": ["id", "payload.part"], "window": "1h"})]
    routes = [RouteSpec("parts", "gen", "a", transforms=[TransformRef("split"), TransformRef("once")],
                        delivery=DeliverySpec(retry=ONCE)),
              RouteSpec("whole", "gen", "b")]
    spec = _spec(tmp_path, routes, transforms)
    rt = Runtime(spec).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 6 and rt.dlq.count() == 6)
        letters = [e for _i, e in rt.dlq.entries()]
        # delivery records: the route, the actor, the event as the actor received it (after the split)
        assert {(e["route"], e["actor"], e["reason"], e["event"]["payload"]["part"]) for e in letters} \
            == {("parts", "a", "gave_up", 2)}
        assert sorted(e["event"]["payload"]["n"] for e in letters) == list(range(6))
        assert sorted(e["payload"]["n"] for e in Picky.taken["a"]) == list(range(6))      # the part 1s
        assert len(Picky.taken["b"]) == 6
        Picky.refusing, splits = False, Split.calls
        if while_running:
            assert len(rt.replay_dead_letters(None)) == 6
        else:
            rt.stop()
            r = CliRunner().invoke(main, ["dlq", "replay", "--all", "--data-dir", str(tmp_path / "data")])
            assert r.exit_code == 0 and "replayed 6" in r.output, r.output
            rt = Runtime(_spec(tmp_path, routes, transforms)).start()   # the replay is delivered at the next start
        assert wait_until(lambda: len(Picky.taken["a"]) == 12)
        time.sleep(0.3)
        assert rt.dlq.count() == 0 and rt.router.redelivered == 6
    finally:
        rt.stop()
    parts = sorted((e["payload"]["n"], e["payload"]["part"]) for e in Picky.taken["a"])
    assert parts == [(n, p) for n in range(6) for p in (1, 2)]                        # each part exactly once
    assert len(Picky.taken["b"]) == 6                # the route that had succeeded got nothing again
    assert Split.calls == splits                     # the replay did not run the transforms again
    # every delivered envelope carries its bus seq (a replayed one: the seq of its redelivery record)
    assert all(type(e.get("seq")) is int and e["seq"] > 0 for e in Picky.taken["a"] + Picky.taken["b"])


def test_on_error_halt_stops_the_route_for_the_event_and_records_a_halted_dead_letter(tmp_path):
    transforms = [TransformSpec("halt-odd", "package", "test-dl-halt-on-odd", on_error="halt")]
    routes = [RouteSpec("evens", "gen", "b", transforms=[TransformRef("halt-odd")])]
    rt = Runtime(_spec(tmp_path, routes, transforms)).start()
    try:
        assert wait_until(lambda: rt.tracker.acked == 6 and rt.dlq.count() == 3)
        assert sorted(e["payload"]["n"] for e in Picky.taken["b"]) == [0, 2, 4]
        letters = [e for _i, e in rt.dlq.entries()]
        assert {(e["route"], e["reason"]) for e in letters} == {("evens", "halted")}
        assert sorted(e["event"]["payload"]["n"] for e in letters) == [1, 3, 5]
        assert all("halt-odd" in e["error"] for e in letters)
    finally:
        rt.stop()


def test_max_rate_counts_every_attempt_retries_included(tmp_path):
    rate = 10.0
    routes = [RouteSpec("limited", "gen", "a", delivery=DeliverySpec(
        max_rate=rate, retry=RetrySpec(max_attempts=1000, initial_delay=0.001, max_delay=0.001),
        circuit_breaker=BreakerSpec(failure_threshold=10_000)))]
    actors = [ActorSpec("a", "test-dl-picky", {"refuse": ("n", 0)})]            # event 0 fails every attempt
    rt = Runtime(_spec(tmp_path, routes, actors=actors, count=1)).start()
    try:
        assert wait_until(lambda: len(Picky.calls) >= 25, timeout=30)
    finally:
        rt.stop(drain_timeout=0.1)
    calls = list(Picky.calls)
    span = calls[-1] - calls[0]
    burst = max(1.0, rate)
    print(f"max_rate {rate}/s: {len(calls)} attempts in {span:.2f}s (limit {rate * span + burst:.1f})")
    assert len(calls) <= rate * span + burst


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # the death is the point
def test_a_dead_worker_turns_health_red_and_is_restarted_without_losing_its_batch(tmp_path):
    routes = [RouteSpec("r", "gen", "b")]
    actors = [ActorSpec("b", "test-dl-picky", {"die_on": 3})]
    rt = Runtime(_spec(tmp_path, routes, actors=actors, count=20)).start()
    try:
        lane = rt.lanes["b"]
        assert wait_until(lambda: lane.worker_deaths == 1)
        ok, problems = rt.healthy()
        assert not ok and any("worker 0 died" in p for p in problems), problems
        assert wait_until(lambda: rt.tracker.acked == 20)                     # restarted: the rest goes on
        assert rt.healthy() == (True, [])
        assert sorted(e["payload"]["n"] for e in Picky.taken["b"]) == list(range(20))
    finally:
        rt.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_a_dead_letter_store_on_a_full_filesystem_keeps_the_event_unacked_and_health_red(tmp_path):
    """The dead-letter store on a 24 MiB tmpfs, half taken by a filler file: 60 dead letters of 300 KB do
    not fit. The lane retries (it never dies), the events stay unacked, health is red; once the filler is
    removed the dead letters are written and the events acked."""
    mnt = tmp_path / "dlqfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        (tmp_path / "data").mkdir()
        os.symlink(mnt, tmp_path / "data" / "dlq")
        filler = mnt / "filler"
        filler.write_bytes(b"\0" * (12 << 20))
        routes = [RouteSpec("r", "gen", "a", delivery=DeliverySpec(
            retry=ONCE, circuit_breaker=BreakerSpec(failure_threshold=10_000)))]
        actors = [ActorSpec("a", "test-dl-picky", {"refuse": ("type", "resource.changed")})]
        spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": 60, "payload_size": 300_000},
                                               poll_interval=0.02)],
                           actors=actors, routes=routes, data_dir=tmp_path / "data", base_dir=tmp_path,
                           bus_options={"segment_size": 4 << 20})
        rt = Runtime(spec)
        rt.start()
        try:
            assert wait_until(lambda: rt.lanes["a"].dead_letter_error is not None, timeout=60)
            ok, problems = rt.healthy()
            assert not ok and any("dead letters" in p for p in problems), problems
            acked = rt.tracker.acked
            time.sleep(0.5)
            assert rt.tracker.acked == acked < 60             # stuck, unacked, while the store cannot write
            assert all(t.is_alive() for t in rt.lanes["a"]._threads)     # the worker never died
            filler.unlink()
            assert wait_until(lambda: rt.tracker.acked == 60, timeout=60)
            assert rt.healthy() == (True, []) and rt.dlq.count() == 60
        finally:
            rt.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        shutil.rmtree(mnt, ignore_errors=True)
