"""End-to-end benchmark of the Tier-1 runtime (issues 4 and 10), three contenders paired in one process.

synthetic source -> FileWalBus (sync=always) -> router with R routes -> 10 no-op actors -> ack, ~256 B
events, for R = 100 and R = 10,000, next to the WAL's own dicts-in figure (``append_events`` of the same
events in batches of 1,000, sync=always, acked after each chunk so its log recycles segments as the
runtimes' logs do).

All three are open at once. Each round runs one chunk of ``--chunk`` events through each of them in turn
(the order alternates from round to round), with the pipeline drained between chunks. A contender's figure
for a round is its chunk's events divided by the time from the first poll of the chunk to the last ack;
each ratio in the table is the median of the per-round ratios. Pairing the contenders round by round
keeps a machine whose speed drifts over seconds (a shared host: ±25 % from one second to the next) from
deciding the ratios, which separate runs of a second or two each could not do. The same work still takes
±15 % from one chunk to the next here (two identical 100-route pipelines paired this way give per-round
ratios with a standard deviation of 0.14-0.16), so a ratio needs many rounds: 40 by default. The events
of a chunk are built before its clock starts, as the WAL's figure uses pre-built dicts too: both then
measure the engine.

    python bench/bench_e2e.py [--quick] [--rounds 40] [--chunk 50000] [--out bench/results/e2e.json]

Targets: end-to-end >= 0.35 x the WAL dicts-in figure; 10,000 routes >= 0.8 x the 100-route figure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from orgloop import plugins
from orgloop.runtime import Runtime
from orgloop.spec import ActorSpec, DeliverySpec, RouteSpec, RuntimeSpec, SourceSpec
from orgloop.wal import Wal, implementation

PAD = "x" * 96   # with the envelope this makes ~256 B of msgpack per event
POLL = 1000      # the runtime polls 1,000 events at a time


def make_events(ids: list[str], start: int, count: int) -> list[dict[str, Any]]:
    """``count`` events numbered from ``start``, spread over the source ids in turn."""
    m = len(ids)
    return [{"id": f"evt_{i:016x}", "timestamp": "2026-01-01T00:00:00.000Z", "source": ids[i % m],
             "type": "resource.changed", "provenance": {"platform": "bench"},
             "payload": {"n": i, "data": PAD}, "trace_id": f"trc_{i:016x}"}
            for i in range(start, start + count)]


class BenchSource:
    """Hands out what the driver has fed it, ``POLL`` events per poll, over ``sources`` ids.

    Each poll stamps its batch's start time, from which the actor samples event-to-delivery latency; the
    first poll of a chunk starts the chunk's clock.
    """

    by_tag: dict[str, "BenchSource"] = {}

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        self.ids = [f"src-{i}" for i in range(config["sources"])]
        self.events: list[dict[str, Any]] = []     # the current chunk
        self.base = 0                              # the number of its first event
        self.stamps: dict[int, float] = {}
        self.first_poll: float | None = None
        BenchSource.by_tag[config["tag"]] = self

    def feed(self, count: int) -> None:
        """The next chunk (the previous one must be all polled)."""
        base = self.base + len(self.events)
        self.events = make_events(self.ids, base, count)
        self.first_poll = None
        self.base = base

    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        n = int(checkpoint or 0)
        batch = self.events[n - self.base:n - self.base + max_events]
        if not batch:
            return [], checkpoint
        now = time.perf_counter()
        if self.first_poll is None:
            self.first_poll = now
        self.stamps[n] = now
        return batch, str(n + len(batch))

    def close(self) -> None:
        pass


class NoopActor:
    """Takes every event; samples its delivery latency (every 16th event)."""

    latencies: list[float] = []

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        self.tag = config["tag"]          # its source (made after the actors)

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        n = event["payload"]["n"]
        if n % 16 == 0:
            NoopActor.latencies.append(time.perf_counter() - BenchSource.by_tag[self.tag].stamps[n - n % POLL])

    def close(self) -> None:
        pass


plugins.register("sources", "bench-e2e", BenchSource)
plugins.register("actors", "bench-noop", NoopActor)


class Pipeline:
    """A started runtime with ``routes`` routes whose source the driver feeds chunk by chunk."""

    def __init__(self, root: Path, routes: int) -> None:
        tag = f"r{routes}"
        spec = RuntimeSpec(
            sources=[SourceSpec("bench", "bench-e2e", {"sources": routes, "tag": tag}, poll_interval=0.01)],
            actors=[ActorSpec(f"actor-{i}", "bench-noop", {"tag": tag}) for i in range(10)],
            routes=[RouteSpec(f"route-{i}", f"src-{i}", f"actor-{i % 10}", events=["resource.changed"],
                              delivery=DeliverySpec(queue_depth=5000, queue_policy="block")) for i in range(routes)],
            data_dir=root / f"e2e-{routes}", base_dir=root, bus="filewal",
            bus_options={"segment_size": 64 << 20, "sync": "always"})
        self.runtime = Runtime(spec)
        self.runtime.start()        # startup (opening the WAL, building 10,000 routes) is not part of the figure
        self.source = BenchSource.by_tag[tag]

    def chunk(self, count: int) -> dict[str, Any]:
        tracker = self.runtime.tracker
        target = tracker.acked + count
        NoopActor.latencies = []
        syncs = self.runtime.bus.wal.stats()["syncs"]
        self.source.feed(count)
        deadline = time.monotonic() + 300
        while tracker.acked < target and time.monotonic() < deadline:
            time.sleep(0.001)
        end = time.perf_counter()
        if tracker.acked < target or self.source.first_poll is None:
            raise RuntimeError(f"a chunk of {count} events did not finish within 300 s")
        lat = sorted(NoopActor.latencies)
        self.source.stamps.clear()
        return {"events_per_s": count / (end - self.source.first_poll),
                "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)],
                "fdatasyncs": self.runtime.bus.wal.stats()["syncs"] - syncs}

    def close(self) -> None:
        self.runtime.stop()


class WalOnly:
    """The WAL's own figure: ``append_events`` of 1,000-dict batches, sync=always, on the same events."""

    def __init__(self, root: Path) -> None:
        self.wal = Wal(root / "wal-only", segment_size=64 << 20)
        self.ids = [f"src-{i}" for i in range(100)]
        self.made = 0

    def chunk(self, count: int) -> dict[str, Any]:
        events = make_events(self.ids, self.made, count)
        self.made += count
        t = time.perf_counter()
        first = last = None
        for i in range(0, count, POLL):
            seqs = self.wal.append_events(events[i:i + POLL])
            first = seqs[0] if first is None else first
            last = seqs[-1]
        dt = time.perf_counter() - t
        self.wal.ack_range(first, last)      # as a consumer keeping up would: the log recycles its segments
        return {"events_per_s": count / dt}

    def close(self) -> None:
        self.wal.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two rounds of small chunks (smoke test)")
    ap.add_argument("--rounds", type=int, default=40, help="rounds, each one chunk per contender (default 40)")
    ap.add_argument("--chunk", type=int, default=50_000, help="events per chunk, a multiple of 1,000")
    ap.add_argument("--out", default="bench/results/e2e.json")
    args = ap.parse_args()
    rounds, chunk = (2, 10_000) if args.quick else (args.rounds, args.chunk)
    if chunk % POLL:
        ap.error(f"--chunk must be a multiple of {POLL}")
    root = Path(tempfile.mkdtemp(prefix=f"orgloop-bench-e2e-{os.getpid()}-", dir="/tmp"))
    contenders: dict[str, Any] = {}
    results: dict[str, list[dict[str, Any]]] = {"wal": [], "routes_100": [], "routes_10000": []}
    try:
        contenders = {"wal": WalOnly(root), "routes_100": Pipeline(root, 100), "routes_10000": Pipeline(root, 10_000)}
        for c in contenders.values():          # warm-up, not counted: first touches of memory and log
            c.chunk(chunk)
        names = list(contenders)
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                results[name].append(contenders[name].chunk(chunk))
    finally:
        for c in contenders.values():
            c.close()
        shutil.rmtree(root, ignore_errors=True)

    def rate(name: str) -> list[float]:
        return [x["events_per_s"] for x in results[name]]

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    e2e_vs_wal = [a / b for a, b in zip(rate("routes_100"), rate("wal"))]
    k10_vs_100 = [a / b for a, b in zip(rate("routes_10000"), rate("routes_100"))]

    def spread(ratios: list[float]) -> str:
        return f"{statistics.median(ratios):.2f} x ({min(ratios):.2f}-{max(ratios):.2f})"

    rows = [
        ("WAL dicts-in (append_events, sync=always)", f"{statistics.median(rate('wal')):,.0f} ev/s", "", ""),
        ("end to end, 100 routes", f"{statistics.median(rate('routes_100')):,.0f} ev/s",
         f"{spread(e2e_vs_wal)} WAL", ">= 0.35"),
        ("  latency p50 / p99", f"{med('routes_100', 'p50_ms'):.1f} / {med('routes_100', 'p99_ms'):.1f} ms", "", ""),
        ("end to end, 10,000 routes", f"{statistics.median(rate('routes_10000')):,.0f} ev/s",
         f"{spread(k10_vs_100)} 100 routes", ">= 0.8"),
        ("  latency p50 / p99", f"{med('routes_10000', 'p50_ms'):.1f} / {med('routes_10000', 'p99_ms'):.1f} ms",
         "", ""),
    ]
    print(f"orgloop end-to-end benchmark ({implementation()} WAL, ~256 B events, {rounds} rounds of {chunk:,} "
          f"events per contender; ratios: median of the rounds (min-max))")
    for name, value, ratio, target in rows:
        print(f"{name:<43} {value:>16} {ratio:>30} {target:>8}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": rounds, "chunk": chunk, **results,
                               "ratio_e2e_vs_wal": statistics.median(e2e_vs_wal), "ratios_e2e_vs_wal": e2e_vs_wal,
                               "ratio_10k_vs_100": statistics.median(k10_vs_100), "ratios_10k_vs_100": k10_vs_100},
                              indent=2))


if __name__ == "__main__":
    main()
