"""Acknowledgement state: a watermark plus the acked sequence numbers above it.

Acks may arrive out of order. Every seq ≤ ``watermark`` is acked (or was lost to damage and counted);
acked seqs above the watermark are kept in a set until the gap below them closes. The state is
persisted to LMDB in batches (at most one commit per ``flush_interval``), never per event: losing the
last batch on a crash only means those events are delivered again (at-least-once), never lost.
"""
from __future__ import annotations

import bisect
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import lmdb
import msgpack

__all__ = ["AckState", "AckStore"]

_KEY = b"acks"
_SHORT_RUN = 64


def _contiguous_prefix(ordered: list[int], first: int) -> int:
    """How many leading items of ``ordered`` (sorted, unique, all >= ``first``) are ``first, first + 1, …``.

    For sorted unique ints ``ordered[j] - j`` never decreases, so the run's end is found by bisection.
    """
    return bisect.bisect_right(range(len(ordered)), first, key=lambda j: ordered[j] - j)


class AckState:
    """In-memory ack bookkeeping; thread-safe."""

    def __init__(self, watermark: int = 0, above: Iterable[int] = (), lost: int = 0,
                 quarantined: Iterable[int] = ()) -> None:
        self.watermark = watermark
        self.above: set[int] = set(above)
        self.lost = lost
        self.quarantined: set[int] = set(quarantined)
        self.changes = 0
        self._lock = threading.Lock()

    def _advance(self) -> None:
        """Move the watermark over the acked seqs held above it that have become contiguous with it.

        Short runs are walked one by one; a long run (a whole batch that waited behind one slow event)
        is found by sorting and bisection, in C, instead of one Python step per seq.
        """
        above = self.above
        w = self.watermark
        for _ in range(_SHORT_RUN):
            if w + 1 not in above:
                self.watermark = w
                return
            w += 1
            above.discard(w)
        self.watermark = w
        if w + 1 not in above:
            return
        held = sorted(above)                       # every held seq is above the watermark
        k = _contiguous_prefix(held, w + 1)
        self.watermark = w + k
        if k == len(held):
            above.clear()
        else:
            above.difference_update(held[:k])

    def ack(self, seq: int) -> None:
        with self._lock:
            if seq == self.watermark + 1:
                self.watermark = seq
                if self.above:
                    self._advance()
            elif seq > self.watermark:
                self.above.add(seq)
            self.changes += 1

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Ack seqs given in any order (duplicates and already-acked seqs are harmless).

        The batch work is done in C (set, sort, slice, bisect) rather than per seq in Python.
        """
        ordered = sorted(set(seqs))
        if ordered and ordered[-1] - ordered[0] + 1 == len(ordered):   # unique and sorted: one contiguous run
            self.ack_range(ordered[0], ordered[-1])
            return
        with self._lock:
            self.changes += len(ordered)
            start = bisect.bisect_right(ordered, self.watermark)
            if start < len(ordered):
                self.above.update(ordered[start:] if start else ordered)
                self._advance()

    def ack_range(self, lo: int, hi: int) -> None:
        """Ack every seq in ``[lo, hi]``."""
        if hi < lo:
            return
        with self._lock:
            w = self.watermark
            if lo <= w + 1:
                if hi > w:
                    self.watermark = hi
                    if self.above:
                        self.above = {s for s in self.above if s > hi}
                        self._advance()
            else:
                self.above.update(range(lo, hi + 1))
            self.changes += hi - lo + 1

    def is_acked(self, seq: int) -> bool:
        return seq <= self.watermark or seq in self.above

    def unacked_in(self, first: int, last: int) -> int:
        """How many seqs of ``[first, last]`` are not acked."""
        with self._lock:
            lo = max(first, self.watermark + 1)
            if last < lo:
                return 0
            return (last - lo + 1) - sum(1 for s in self.above if lo <= s <= last)

    def to_bytes(self) -> bytes:
        with self._lock:
            ranges: list[list[int]] = []
            for s in sorted(self.above):
                if ranges and ranges[-1][1] == s - 1:
                    ranges[-1][1] = s
                else:
                    ranges.append([s, s])
            return msgpack.packb({"v": 1, "watermark": self.watermark, "above": ranges, "lost": self.lost,
                                  "quarantined": sorted(self.quarantined)})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "AckState":
        d = msgpack.unpackb(raw)
        above = [s for lo, hi in d.get("above", ()) for s in range(lo, hi + 1)]
        return cls(d["watermark"], above, d.get("lost", 0), d.get("quarantined", ()))


class AckStore:
    """Persists an :class:`AckState` in an LMDB environment, in batches."""

    def __init__(self, path: Path, *, flush_interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        path.mkdir(parents=True, exist_ok=True)
        # metasync=False: a crash can lose at most the last commit, i.e. some redeliveries; flush(durable=True)
        # forces both flushes before compaction deletes anything.
        self.env = lmdb.open(str(path), map_size=256 << 20, subdir=True, max_dbs=1, metasync=False, sync=True,
                             lock=True)
        self.flush_interval = flush_interval
        self._clock = clock
        self._last_flush = clock()
        self._flushed_changes = 0
        self.commits = 0
        self.commit_seconds = 0.0

    def load(self) -> AckState | None:
        with self.env.begin() as txn:
            raw = txn.get(_KEY)
        return AckState.from_bytes(raw) if raw is not None else None

    def maybe_flush(self, state: AckState) -> None:
        """Commit if the batch interval has passed and something changed (cheap to call per ack)."""
        if state.changes != self._flushed_changes and self._clock() - self._last_flush >= self.flush_interval:
            self.flush(state)

    def flush(self, state: AckState, durable: bool = False) -> None:
        t0 = time.perf_counter()
        changes = state.changes
        blob = state.to_bytes()
        with self.env.begin(write=True) as txn:
            txn.put(_KEY, blob)
        if durable:
            self.env.sync(True)
        self._flushed_changes = changes
        self._last_flush = self._clock()
        self.commits += 1
        self.commit_seconds += time.perf_counter() - t0

    def close(self) -> None:
        self.env.close()
