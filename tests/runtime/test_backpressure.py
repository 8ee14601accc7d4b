"""A slow actor never grows memory past its bounds: its queue holds at most ``queue_depth`` events, and
the rest either waits unacked in the WAL (block: the bus hands over only as many events as the lane has
room for) or is pushed out to the dead-letter store (drop-oldest). Measured as queue length, events held
in the process (fetched from the bus and not finished), and Python heap growth (tracemalloc) while tens of
thousands of events flow past. Real RSS is measured in ``test_memory_bounds.py``."""
import threading
import tracemalloc

import pytest
from support.actors import slow_actor
from support.pipeline import wait_until

from orgloop import plugins
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec

DEPTH = 50
# Transient batches (a poll, its encoded records, a dispatch batch, dead letters being written) peak at
# about 2.5 MiB here and went to 4.5 MiB once on a loaded machine; 25,000 retained events would be well
# over 15 MiB, so 8 MiB still tells bounded from unbounded.
HEAP_SLACK = 8 << 20


SlowActor = slow_actor(0.002)                # 2 ms per event
plugins.register("actors", "test-slow", SlowActor)


class Sampler:
    """Samples ``probe()`` every millisecond on a thread and keeps the maximum."""

    def __init__(self, probe):
        self.probe, self.max, self._stop = probe, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.001):
            self.max = max(self.max, self.probe())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


MAX_POLL, BATCH, FETCH = 500, 256, 1000
# one fetch being routed + the queue + a worker's batch + evictions not yet counted (<= DEPTH)
HELD_BOUND = FETCH + DEPTH + BATCH + DEPTH


def _runtime(tmp_path, policy, count):
    SlowActor.delivered = 0
    spec = RuntimeSpec(sources=[SourceSpec("gen", "generator", {"count": count, "payload_size": 200},
                                           poll_interval=0.05)],
                       actors=[ActorSpec("slow", "test-slow")],
                       routes=[RouteSpec("r", "gen", "slow", delivery=DeliverySpec(queue_depth=DEPTH,
                                                                                   queue_policy=policy))],
                       data_dir=tmp_path / "data", base_dir=tmp_path,
                       bus_options={"segment_size": 1 << 20})
    rt = Runtime(spec, max_poll=MAX_POLL).start()
    lane = rt.lanes["slow"]
    held = lambda: rt.bus.fetched - SlowActor.delivered - lane.dropped   # noqa: E731 - events in the process
    return rt, lane, held


@pytest.fixture
def heap():
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def test_drop_oldest_keeps_the_queue_and_the_heap_flat(tmp_path, heap):
    rt, lane, held = _runtime(tmp_path, "drop_oldest", 30_000)
    try:
        with Sampler(lambda: len(lane.queue)) as queue_len, Sampler(held) as in_process:
            assert wait_until(lambda: rt.events_published >= 5_000, timeout=60)
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            assert wait_until(lambda: rt.tracker.acked == 30_000, timeout=120)
            peak = tracemalloc.get_traced_memory()[1]
        assert queue_len.max <= DEPTH and in_process.max <= HELD_BOUND
        assert lane.dropped + SlowActor.delivered == 30_000 and lane.dropped > 0
        assert peak - base < HEAP_SLACK, f"heap grew by {(peak - base) / 2**20:.1f} MiB"
    finally:
        rt.stop()


def test_block_leaves_the_backlog_in_the_wal_and_dead_letters_nothing(tmp_path, heap):
    rt, lane, held = _runtime(tmp_path, "block", 10**6)
    try:
        with Sampler(lambda: len(lane.queue)) as queue_len, Sampler(held) as in_process:
            assert wait_until(lambda: SlowActor.delivered >= 100, timeout=60)
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            assert wait_until(lambda: SlowActor.delivered >= 600, timeout=60)
            peak = tracemalloc.get_traced_memory()[1]
        assert queue_len.max <= DEPTH and in_process.max <= HELD_BOUND and lane.dropped == 0
        assert rt.dlq.count() == 0
        assert rt.bus.fetched < 600 + HELD_BOUND                  # the backlog waits in the log, unfetched
        assert peak - base < HEAP_SLACK, f"heap grew by {(peak - base) / 2**20:.1f} MiB"
    finally:
        rt.stop(drain_timeout=0.5)
