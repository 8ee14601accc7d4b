"""Bounded-queue throughput: compiled twin, pure twin, ``queue.Queue`` and ``collections.deque``.

All four run in this one process, so the ratios compare like with like on whatever machine this is.

Scenarios (items per second, median of ``--repeat`` runs):

* ``single``:  one thread, ``put`` then ``get`` of the same item, N times: the raw cost of one op pair.
* ``pair``:    one producer thread ``put``s N items, one consumer thread ``get``s them (queue depth 1000,
  producer waits when full so nothing is dropped).
* ``batch``:   as ``pair`` with ``put_many``/``get_many`` of 100 items. ``queue.Queue`` has no batch API,
  so its row loops per item inside each batch; ``deque`` uses ``extend``/``popleft``.

``deque`` is unbounded and has no blocking: its consumer spins on an empty deque, so it is the
"no synchronisation at all" ceiling rather than a drop-in alternative.

Run: ``python bench/bench_queue.py [--items N] [--repeat 3]``; writes ``bench/results/queue.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import queue
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orgloop.queues import twins

DEPTH = 1000
BATCH = 100
END = object()


class Candidate:
    """One implementation, described by the four operations the scenarios need."""

    def __init__(self, name: str, make: Callable[[], Any], put: str, get: str, put_batch: Callable[[Any, list[Any]], None],
                 get_batch: Callable[[Any], list[Any]]) -> None:
        self.name, self.make, self.put_name, self.get_name = name, make, put, get
        self.put_batch, self.get_batch = put_batch, get_batch


def _bounded(module: Any) -> Candidate:
    return Candidate(
        module.__name__.rsplit(".", 1)[-1].replace("_queue_py", "pure").replace("_queue", "compiled"),
        lambda: module.BoundedQueue(DEPTH, "block"), "put", "get",
        lambda q, items: q.put_many(items), lambda q: q.get_many(BATCH))


def _stdlib_put_batch(q: queue.Queue, items: list[Any]) -> None:
    for item in items:
        q.put(item)


def _stdlib_get_batch(q: queue.Queue) -> list[Any]:
    out = [q.get()]
    try:
        while len(out) < BATCH:
            out.append(q.get_nowait())
    except queue.Empty:
        pass
    return out


def _deque_get_batch(d: deque) -> list[Any]:
    while not d:
        time.sleep(0)  # spin: deque cannot block
    out: list[Any] = []
    try:
        while len(out) < BATCH:
            out.append(d.popleft())
    except IndexError:
        pass
    return out


def candidates() -> list[Candidate]:
    found = []
    if twins.compiled is not None:
        found.append(_bounded(twins.compiled))
    found.append(_bounded(twins.pure))
    found.append(Candidate("queue.Queue", lambda: queue.Queue(DEPTH), "put", "get", _stdlib_put_batch,
                           _stdlib_get_batch))
    found.append(Candidate("deque", deque, "append", "popleft", lambda d, items: d.extend(items),
                           _deque_get_batch))
    return found


def run_single(c: Candidate, n: int) -> float:
    q = c.make()
    put, get = getattr(q, c.put_name), getattr(q, c.get_name)
    t0 = time.perf_counter()
    for i in range(n):
        put(i)
        get()
    return n / (time.perf_counter() - t0)


def _run_threads(producer: Callable[[], None], consumer: Callable[[], None]) -> float:
    threads = [threading.Thread(target=consumer), threading.Thread(target=producer)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def run_pair(c: Candidate, n: int) -> float:
    q = c.make()
    put, get = getattr(q, c.put_name), getattr(q, c.get_name)
    received = 0

    def producer() -> None:
        for i in range(n):
            put(i)
        put(END)

    def consumer() -> None:
        nonlocal received
        if c.name == "deque":
            while True:
                try:
                    item = get()
                except IndexError:
                    time.sleep(0)
                    continue
                if item is END:
                    return
                received += 1
        while get() is not END:
            received += 1

    elapsed = _run_threads(producer, consumer)
    assert received == n, (c.name, received, n)
    return n / elapsed


def run_batch(c: Candidate, n: int) -> float:
    q = c.make()
    chunks = [list(range(i, min(i + BATCH, n))) for i in range(0, n, BATCH)]
    received = 0

    def producer() -> None:
        for chunk in chunks:
            c.put_batch(q, chunk)
        c.put_batch(q, [END])

    def consumer() -> None:
        nonlocal received
        while True:
            items = c.get_batch(q)
            if items and items[-1] is END:
                received += len(items) - 1
                return
            received += len(items)

    elapsed = _run_threads(producer, consumer)
    assert received == n, (c.name, received, n)
    return n / elapsed


SCENARIOS: dict[str, Callable[[Candidate, int], float]] = {"single": run_single, "pair": run_pair, "batch": run_batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300_000, help="items per run (default 300000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the median is reported")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "queue.json")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    for scenario, fn in SCENARIOS.items():
        results[scenario] = {}
        for c in candidates():
            results[scenario][c.name] = statistics.median(fn(c, args.items) for _ in range(args.repeat))

    names = [c.name for c in candidates()]
    print(f"items/s, median of {args.repeat} runs of {args.items} items (ratio vs queue.Queue)")
    print(f"{'scenario':<8}" + "".join(f"{n:>24}" for n in names))
    for scenario, row in results.items():
        base = row["queue.Queue"]
        cells = "".join(f"{row[n]:>14,.0f} ({row[n] / base:4.1f}x)" for n in names)
        print(f"{scenario:<8}{cells}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "python": sys.version.split()[0], "machine": platform.machine(), "items": args.items,
        "repeat": args.repeat, "depth": DEPTH, "batch": BATCH, "items_per_second": results,
        "ratio_vs_queue_Queue": {s: {n: row[n] / row["queue.Queue"] for n in names} for s, row in results.items()},
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
