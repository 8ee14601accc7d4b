"""End-to-end benchmark of the Tier-1 runtime (issue 4).

synthetic source -> FileWalBus (sync=always) -> router with R routes -> 10 no-op actors -> ack,
~256 B events. Prints events/s and p50/p99 event-to-delivery latency, next to the WAL's dicts-in
append throughput measured in the same process, and writes JSON.

    python bench/bench_e2e.py [--quick] [--out bench/results/e2e.json]

Targets: end-to-end >= 0.35 x the WAL dicts-in figure; 10,000 routes >= 0.8 x the 100-route figure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from orgloop import plugins
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec
from orgloop.wal import Wal, implementation

PAD = "x" * 96   # with the envelope this makes ~256 B of msgpack per event


class BenchSource:
    """Events as fast as the pipeline takes them, spread over ``sources`` ids.

    The events are built when the source is created (before the clock starts), as the WAL's dicts-in
    figure uses pre-built dicts too: both figures then measure the engine, not the building of dicts.
    Each poll stamps its batch's start time, from which the actor samples event-to-delivery latency.
    """

    stamps: dict[int, float] = {}

    def __init__(self, source_id, config, *, base_dir):
        ids = [f"src-{i}" for i in range(config["sources"])]
        m = len(ids)
        self.events = [{"id": f"evt_{i:016x}", "timestamp": "2026-01-01T00:00:00.000Z", "source": ids[i % m],
                        "type": "resource.changed", "provenance": {"platform": "bench"},
                        "payload": {"n": i, "data": PAD}, "trace_id": f"trc_{i:016x}"}
                       for i in range(config["count"])]
        BenchSource.stamps = {}

    def poll(self, checkpoint, max_events):
        n = int(checkpoint or 0)
        batch = self.events[n:n + max_events]
        if not batch:
            return [], checkpoint
        BenchSource.stamps[n] = time.perf_counter()
        return batch, str(n + len(batch))

    def close(self):
        pass


class NoopActor:
    """Takes every event; samples its delivery latency."""

    latencies: list[float] = []
    delivered = 0
    lock = threading.Lock()

    def __init__(self, actor_id, config, *, base_dir):
        pass

    def deliver(self, event, prompt, config):
        n = event["payload"]["n"]
        if n % 16 == 0:
            start = n - n % 1000          # the runtime polls 1,000 events at a time
            NoopActor.latencies.append(time.perf_counter() - BenchSource.stamps[start])

    def close(self):
        pass


plugins.register("sources", "bench-e2e", BenchSource)
plugins.register("actors", "bench-noop", NoopActor)


def wal_dicts_in(root: Path, n: int) -> float:
    """The WAL's own figure: append_events of 1000-dict batches, sync=always (same events)."""
    events = BenchSource("s", {"sources": 100, "count": n}, base_dir=root).events
    path = root / "wal-only"
    with Wal(path, segment_size=64 << 20) as wal:
        t = time.perf_counter()
        for i in range(0, n, 1000):
            wal.append_events(events[i:i + 1000])
        dt = time.perf_counter() - t
    shutil.rmtree(path)
    return n / dt


def e2e(root: Path, routes: int, n: int) -> dict:
    NoopActor.latencies = []
    data = root / f"e2e-{routes}"
    spec = RuntimeSpec(
        sources=[SourceSpec("bench", "bench-e2e", {"sources": routes, "count": n}, poll_interval=0.01)],
        actors=[ActorSpec(f"actor-{i}", "bench-noop", {}) for i in range(10)],
        routes=[RouteSpec(f"route-{i}", f"src-{i}", f"actor-{i % 10}", events=["resource.changed"],
                          delivery=DeliverySpec(queue_depth=5000, queue_policy="block")) for i in range(routes)],
        data_dir=data, base_dir=root, bus="filewal",
        bus_options={"segment_size": 64 << 20, "sync": "always"})
    rt = Runtime(spec)
    rt.start()          # startup (opening the WAL, building 10,000 routes) is not part of the figure
    t0 = time.perf_counter()
    deadline = time.monotonic() + 300
    while rt.tracker.acked < n and time.monotonic() < deadline:
        time.sleep(0.002)
    dt = time.perf_counter() - t0
    wal_stats = rt.bus.wal.stats()
    rt.stop()
    shutil.rmtree(data)
    lat = sorted(NoopActor.latencies)
    return {"routes": routes, "events": n, "seconds": dt, "events_per_s": n / dt,
            "p50_ms": 1000 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else None,
            "fdatasyncs": wal_stats["syncs"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer events, one repetition (smoke test)")
    ap.add_argument("--out", default="bench/results/e2e.json")
    args = ap.parse_args()
    n = 50_000 if args.quick else 300_000
    reps = 1 if args.quick else 3
    root = Path(tempfile.mkdtemp(prefix=f"orgloop-bench-e2e-{os.getpid()}-", dir="/tmp"))
    try:
        wal_runs, r100, r10k = [], [], []
        # Warm-up, not counted: the first runs in a process pay for memory the process has never touched.
        wal_dicts_in(root, n // 5)
        e2e(root, 100, n // 5)
        e2e(root, 10_000, n // 5)
        for _ in range(reps):
            wal_runs.append(wal_dicts_in(root, n))
            r100.append(e2e(root, 100, n))
            r10k.append(e2e(root, 10_000, n))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    wal = statistics.median(wal_runs)
    med = lambda runs, k: statistics.median(r[k] for r in runs)  # noqa: E731
    e100, e10k = med(r100, "events_per_s"), med(r10k, "events_per_s")
    rows = [
        ("WAL dicts-in (append_events, sync=always)", f"{wal:,.0f} ev/s", "", ""),
        ("end to end, 100 routes", f"{e100:,.0f} ev/s", f"{e100 / wal:.2f} x WAL", ">= 0.35"),
        ("  latency p50 / p99", f"{med(r100, 'p50_ms'):.1f} / {med(r100, 'p99_ms'):.1f} ms", "", ""),
        ("end to end, 10,000 routes", f"{e10k:,.0f} ev/s", f"{e10k / e100:.2f} x 100 routes", ">= 0.8"),
        ("  latency p50 / p99", f"{med(r10k, 'p50_ms'):.1f} / {med(r10k, 'p99_ms'):.1f} ms", "", ""),
    ]
    print(f"orgloop end-to-end benchmark ({implementation()} WAL, {n:,} events of ~256 B, median of {reps})")
    for name, value, ratio, target in rows:
        print(f"{name:<45} {value:>22} {ratio:>18} {target:>8}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"events": n, "repetitions": reps, "wal_dicts_in": wal_runs, "routes_100": r100,
                               "routes_10000": r10k, "ratio_e2e_vs_wal": e100 / wal,
                               "ratio_10k_vs_100": e10k / e100}, indent=2))


if __name__ == "__main__":
    main()
