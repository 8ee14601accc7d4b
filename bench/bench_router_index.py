"""Route-index match throughput with 100 and with 10,000 routes (target: ratio >= 0.8).

Both route sets hold the same 20 wildcard and glob routes plus exact (source, type) routes spread
over 2,000 sources and 20 types. The traffic is the same for both: events drawn from one fixed set
of 1,000 distinct (source, type) pairs, so only the route table differs (a stream with more distinct
pairs needs a bigger cache whatever the number of routes). Reported per size, median of
``--repeat`` runs:

* ``match``:       one ``match(source, type)`` call per event (warm cache: the steady state);
* ``match_many``:  the same events in batches of 256;
* ``cold``:        ``match`` right after the cache was invalidated, i.e. the cost of a first sighting,
                   which grows with the number of *glob* routes, not of all routes.

Run: ``python bench/bench_router_index.py [--events N] [--repeat 3]``; writes
``bench/results/router_index.json``.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

from orgloop.router import RouteIndex

WILDCARD_ROUTES = [
    ("*", None), ("*", ["type-1"]), ("src-1*", None), ("src-2?", ["type-2", "type-3"]), ("*", ["type-1?"]),
] * 4
SOURCES, TYPES, PAIRS, BATCH = 2000, 20, 1000, 256


def build(n_routes: int, rng: random.Random) -> RouteIndex[int]:
    index: RouteIndex[int] = RouteIndex()
    for i, (source, events) in enumerate(WILDCARD_ROUTES):
        index.add(f"wild-{i}", source, events, i)
    for i in range(n_routes - len(WILDCARD_ROUTES)):
        index.add(f"exact-{i}", f"src-{rng.randrange(SOURCES)}", [f"type-{rng.randrange(TYPES)}"], i)
    return index


def traffic(n_events: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The distinct pairs and the event stream drawn from them (identical for every route count)."""
    rng = random.Random(7)
    pairs: dict[tuple[str, str], None] = {}
    while len(pairs) < PAIRS:
        pairs[(f"src-{rng.randrange(SOURCES)}", f"type-{rng.randrange(TYPES)}")] = None
    distinct = list(pairs)
    return distinct, [rng.choice(distinct) for _ in range(n_events)]


def run_match(index: RouteIndex[int], events: list[tuple[str, str]]) -> float:
    match = index.match
    t0 = time.perf_counter()
    for source, event_type in events:
        match(source, event_type)
    return len(events) / (time.perf_counter() - t0)


def run_match_many(index: RouteIndex[int], events: list[tuple[str, str]]) -> float:
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    t0 = time.perf_counter()
    for batch in batches:
        index.match_many(batch)
    return len(events) / (time.perf_counter() - t0)


def run_cold(index: RouteIndex[int], pairs: list[tuple[str, str]]) -> float:
    unique = list(dict.fromkeys(pairs))
    index.add("bench-invalidate", "nowhere", None, -1)
    index.remove("bench-invalidate")  # empties the cache
    t0 = time.perf_counter()
    for source, event_type in unique:
        index.match(source, event_type)
    return len(unique) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per run (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "router_index.json")
    args = parser.parse_args()

    results: dict[int, dict[str, float]] = {}
    fanout: dict[int, float] = {}
    pairs, events = traffic(args.events)
    for n_routes in (100, 10_000):
        index = build(n_routes, random.Random(42))
        fanout[n_routes] = statistics.mean(len(index.match(*p)) for p in pairs)
        results[n_routes] = {
            "match": statistics.median(run_match(index, events) for _ in range(args.repeat)),
            "match_many": statistics.median(run_match_many(index, events) for _ in range(args.repeat)),
            "cold": statistics.median(run_cold(index, pairs) for _ in range(args.repeat)),
        }

    print(f"events/s, median of {args.repeat} runs of {args.events} events")
    print(f"{'routes':>8} {'fan-out':>8} {'match':>14} {'match_many':>14} {'cold (first sight)':>20}")
    for n, row in results.items():
        print(f"{n:>8} {fanout[n]:>8.2f} {row['match']:>14,.0f} {row['match_many']:>14,.0f} {row['cold']:>20,.0f}")
    ratios = {k: results[10_000][k] / results[100][k] for k in ("match", "match_many", "cold")}
    print("ratio 10,000 / 100 routes: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
          + " (target >= 0.8 for match)")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"events": args.events, "repeat": args.repeat, "fanout": fanout,
                                    "events_per_second": results, "ratio_10000_vs_100": ratios}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
