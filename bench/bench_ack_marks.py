"""What riding acks on the WAL's durable marks is worth (format 3), measured in one process.

One process appends, in turn and in chunks of ``--chunk-mib`` MiB, to three targets:

* ``B_rec``: ``os.write(b"".join(1000 framed records))`` + ``fdatasync`` into a pre-written file
  (the baseline of ``bench_wal.py``);
* a steady WAL whose in-order acks ride on the durable marks (as shipped);
* a steady WAL whose ack saver is made to commit to LMDB per full batch, as before format 3 (its
  ``_ride_marks`` is replaced by one that always says no: a benchmark-only switch, not an option).

Each WAL batch is ``append_many`` of 1,000 records then ``ack_range`` of them, as a router keeping up
would. The order of the three alternates from chunk to chunk, so that a drifting disk touches all of
them alike; each ratio is B_rec's time divided by the WAL's, summed over the chunks.

    python bench/bench_ack_marks.py [--rounds 3] [--mib 384] [--out bench/results/ack_marks.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import msgpack

sys.path.insert(0, str(Path(__file__).parent))
from bench_wal import BATCH, FRAME, make_events, prewritten, steady_wal  # noqa: E402

from orgloop.wal import Wal, implementation  # noqa: E402


def _never_ride(wal: Wal) -> None:
    """Make ``wal``'s ack saver commit as it did before format 3 (benchmark-only)."""
    store = wal._acks_store
    assert store is not None

    def never(state: Any) -> bool:
        store._riding = False
        return False

    store._ride_marks = never  # type: ignore[method-assign]
    store._riding = False


def one_round(root: Path, blobs: list[bytes], recs: list[bytes], total_mib: int, chunk_batches: int) -> dict[str, Any]:
    batches = (total_mib << 20) // sum(len(r) for r in recs[:BATCH])
    fd = prewritten(root / "b_rec", batches * sum(len(r) for r in recs[:BATCH]) + (1 << 20))
    wals = {"ride": steady_wal(root / "ride", 64 << 20), "commit": steady_wal(root / "commit", 64 << 20)}
    _never_ride(wals["commit"])
    spent = {"b_rec": 0.0, "ride": 0.0, "commit": 0.0}
    before = {name: wal.stats()["ack_commits"] for name, wal in wals.items()}
    try:
        done = 0
        while done < batches:
            k = min(chunk_batches, batches - done)
            order = ["b_rec", "ride", "commit"]
            if (done // chunk_batches) % 2:
                order.reverse()
            for name in order:
                t = time.perf_counter()
                for j in range(k):
                    i = ((done + j) * BATCH) % (len(blobs) - BATCH)
                    if name == "b_rec":
                        os.write(fd, b"".join(recs[i:i + BATCH]))
                        os.fdatasync(fd)
                    else:
                        seqs = wals[name].append_many(blobs[i:i + BATCH])
                        wals[name].ack_range(seqs[0], seqs[-1])
                spent[name] += time.perf_counter() - t
            done += k
        commits = {name: wal.stats()["ack_commits"] - before[name] for name, wal in wals.items()}
        rides = wals["ride"].stats()["ack_mark_rides"]
    finally:
        for wal in wals.values():
            wal.close()
        os.close(fd)
    return {"ratio_ride": spent["b_rec"] / spent["ride"], "ratio_commit": spent["b_rec"] / spent["commit"],
            "commits_ride": commits["ride"], "commits_commit": commits["commit"], "mark_rides": rides,
            "batches": batches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=384, help="MiB appended to each target per round")
    ap.add_argument("--chunk-mib", type=int, default=8, help="MiB appended to one target before the next")
    ap.add_argument("--size", type=int, default=1024, help="event size in bytes")
    ap.add_argument("--out", default="bench/results/ack_marks.json")
    args = ap.parse_args()
    blobs = [msgpack.packb(e) for e in make_events(20_000, args.size)]
    recs = [FRAME.pack(len(b), zlib.crc32(b)) + b for b in blobs]
    chunk_batches = max(1, (args.chunk_mib << 20) // sum(len(r) for r in recs[:BATCH]))
    print(f"acks riding on durable marks vs an LMDB commit per batch: {implementation()} WAL, {args.size} B events, "
          f"{args.rounds} rounds of {args.mib} MiB per target, {args.chunk_mib} MiB chunks in turn")
    runs = []
    for n in range(args.rounds):
        root = Path(tempfile.mkdtemp(prefix=f"orgloop-bench-ackmarks-{os.getpid()}-", dir="/tmp"))
        try:
            r = one_round(root, blobs, recs, args.mib, chunk_batches)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        runs.append(r)
        print(f"  round {n + 1}: riding {r['ratio_ride']:.3f} x B_rec ({r['commits_ride']} LMDB commits, "
              f"{r['mark_rides']} rides), committing per batch {r['ratio_commit']:.3f} x B_rec "
              f"({r['commits_commit']} commits), riding / committing {r['ratio_ride'] / r['ratio_commit']:.3f}",
              flush=True)
    gain = statistics.median(r["ratio_ride"] / r["ratio_commit"] for r in runs)
    print(f"median: riding {statistics.median(r['ratio_ride'] for r in runs):.3f} x B_rec, committing per batch "
          f"{statistics.median(r['ratio_commit'] for r in runs):.3f} x B_rec, riding / committing {gain:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"implementation": implementation(), "size": args.size, "mib": args.mib,
                               "chunk_mib": args.chunk_mib, "runs": runs, "median_gain": gain}, indent=2))
    print(f"JSON written to {out}")


if __name__ == "__main__":
    main()
