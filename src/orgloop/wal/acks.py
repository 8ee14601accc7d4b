"""Acknowledgement state: a watermark plus the acked ranges of seqs above it, persisted in batches.

Acks may arrive out of order. Every seq ≤ ``watermark`` is acked (or was lost to damage and counted).
Acked seqs above the watermark are kept as sorted, disjoint, non-adjacent ranges, so a million acks
waiting behind one slow event cost one range: memory, each check and each save stay small.

:class:`AckStore` saves the state to LMDB from a background thread, at most ``flush_interval`` after
the first unsaved ack or as soon as ``flush_batch`` acks are waiting, never per event. Losing the
last batch on a crash only means those events are delivered again (at-least-once), never lost.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from pathlib import Path
from typing import Iterable

import lmdb
import msgpack

from orgloop.errors import WalError

__all__ = ["AckState", "AckStore", "AckStoreDamaged", "DEFAULT_FLUSH_INTERVAL", "DEFAULT_FLUSH_BATCH"]

log = logging.getLogger("orgloop.wal")

_KEY = b"acks"
DEFAULT_FLUSH_INTERVAL = 0.05
DEFAULT_FLUSH_BATCH = 1000


def _runs(ordered: list[int]) -> Iterable[tuple[int, int]]:
    """The maximal runs ``(lo, hi)`` of consecutive ints in ``ordered`` (sorted, unique).

    For sorted unique ints ``ordered[j] - j`` never decreases and is constant along a run, so each
    run's end is found by bisection: the cost grows with the number of runs, not of seqs.
    """
    n = len(ordered)
    if n and ordered[-1] - ordered[0] == n - 1:
        yield ordered[0], ordered[-1]                  # the usual case: one batch, acked in any order
        return
    j = 0
    while j < n:
        key = ordered[j] - j
        k = bisect.bisect_right(range(n), key, lo=j, key=lambda x: ordered[x] - x)
        yield ordered[j], ordered[k - 1]
        j = k


class AckState:
    """In-memory ack bookkeeping; thread-safe."""

    def __init__(self, watermark: int = 0, ranges: Iterable[tuple[int, int]] = (), lost: int = 0,
                 quarantined: Iterable[int] = ()) -> None:
        self.watermark = watermark
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._held = 0
        self.lost = lost
        self.quarantined: set[int] = set(quarantined)
        self.changes = 0
        self._lock = threading.Lock()
        for lo, hi in ranges:
            self._add(lo, hi)

    # ------------------------------------------------------------------ updates
    def _add(self, lo: int, hi: int) -> None:
        """Ack ``[lo, hi]`` (caller holds the lock): merge it into the ranges, or move the watermark."""
        if hi < lo or hi <= self.watermark:
            return
        starts, ends = self._starts, self._ends
        if lo <= self.watermark + 1:
            j = bisect.bisect_right(starts, hi + 1)        # every range starting by hi + 1 joins the watermark
            if j:
                hi = max(hi, ends[j - 1])
                self._held -= sum(ends[:j]) - sum(starts[:j]) + j
                del starts[:j], ends[:j]
            self.watermark = hi
            return
        i = bisect.bisect_left(ends, lo - 1)                # first range touching or after lo
        j = bisect.bisect_right(starts, hi + 1)             # ranges [i, j) touch [lo, hi]
        if i == j:
            starts.insert(i, lo)
            ends.insert(i, hi)
            self._held += hi - lo + 1
            return
        nlo, nhi = min(lo, starts[i]), max(hi, ends[j - 1])
        self._held += (nhi - nlo + 1) - (sum(ends[i:j]) - sum(starts[i:j]) + (j - i))
        starts[i:j] = [nlo]
        ends[i:j] = [nhi]

    def ack(self, seq: int) -> None:
        with self._lock:
            w = self.watermark
            if seq == w + 1:
                starts = self._starts
                if starts and starts[0] == seq + 1:
                    self.watermark = self._ends[0]
                    self._held -= self._ends[0] - starts[0] + 1
                    del starts[0], self._ends[0]
                else:
                    self.watermark = seq
            elif seq > w:
                ends = self._ends
                if ends and seq == ends[-1] + 1:           # the usual case: extends the newest range
                    ends[-1] = seq
                    self._held += 1
                else:
                    self._add(seq, seq)
            self.changes += 1

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Ack seqs given in any order (duplicates and already-acked seqs are harmless)."""
        self.ack_sorted(sorted(set(seqs)))

    def ack_sorted(self, ordered: list[int]) -> None:
        """Ack ``ordered``: sorted, without duplicates (what ``sorted(set(seqs))`` gives)."""
        if not ordered:
            return
        with self._lock:
            for lo, hi in _runs(ordered):
                self._add(lo, hi)
            self.changes += len(ordered)

    def ack_range(self, lo: int, hi: int) -> None:
        """Ack every seq in ``[lo, hi]``."""
        if hi < lo:
            return
        with self._lock:
            self._add(lo, hi)
            self.changes += hi - lo + 1

    # ------------------------------------------------------------------ queries
    @property
    def held(self) -> int:
        """How many acked seqs are held above the watermark."""
        return self._held

    @property
    def highest(self) -> int:
        """The highest acked seq (the watermark if nothing is held above it)."""
        with self._lock:
            return self._ends[-1] if self._ends else self.watermark

    @property
    def range_count(self) -> int:
        """How many disjoint ranges hold those seqs."""
        return len(self._starts)

    def ranges(self) -> list[tuple[int, int]]:
        """The acked ranges above the watermark, in order."""
        with self._lock:
            return list(zip(self._starts, self._ends))

    def is_acked(self, seq: int) -> bool:
        if seq <= self.watermark:
            return True
        with self._lock:
            i = bisect.bisect_right(self._starts, seq) - 1
            return i >= 0 and self._ends[i] >= seq

    def acked_in(self, first: int, last: int) -> int:
        """How many seqs of ``[first, last]`` are acked."""
        with self._lock:
            w = self.watermark
            if last < first:
                return 0
            done = max(0, min(last, w) - first + 1)
            lo = max(first, w + 1)
            starts, ends = self._starts, self._ends
            if last < lo or not starts:
                return done
            if lo <= starts[0] and last >= ends[-1]:
                return done + self._held                   # the usual question (stats): no walk at all
            i = bisect.bisect_left(ends, lo)
            j = bisect.bisect_right(starts, last)
            for k in range(i, j):
                done += min(ends[k], last) - max(starts[k], lo) + 1
            return done

    def unacked_in(self, first: int, last: int) -> int:
        """How many seqs of ``[first, last]`` are not acked."""
        return max(0, last - first + 1) - self.acked_in(first, last)

    def unacked_runs(self, first: int, last: int) -> list[tuple[int, int]]:
        """The maximal runs of unacked seqs within ``[first, last]``, in order."""
        with self._lock:
            lo = max(first, self.watermark + 1)
            if last < lo:
                return []
            starts, ends = self._starts, self._ends
            runs = []
            i = bisect.bisect_left(ends, lo)
            j = bisect.bisect_right(starts, last)
            for k in range(i, j):
                if starts[k] > lo:
                    runs.append((lo, starts[k] - 1))
                lo = ends[k] + 1
            if lo <= last:
                runs.append((lo, last))
            return runs

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        with self._lock:
            watermark, starts, ends = self.watermark, list(self._starts), list(self._ends)
            lost, quarantined = self.lost, sorted(self.quarantined)
        return msgpack.packb({"v": 1, "watermark": watermark, "above": list(zip(starts, ends)), "lost": lost,
                              "quarantined": quarantined})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "AckState":
        """Parse a saved state; raises ``ValueError`` (or ``TypeError``/``KeyError``) if it is not one."""
        d = msgpack.unpackb(raw)
        watermark = d["watermark"]
        ranges = [(int(lo), int(hi)) for lo, hi in d.get("above", ())]
        if not isinstance(watermark, int) or watermark < 0 or any(lo > hi or lo < 1 for lo, hi in ranges):
            raise ValueError("ack state holds impossible values")
        return cls(watermark, ranges, int(d.get("lost", 0)), (int(q) for q in d.get("quarantined", ())))


class AckStoreDamaged(WalError):
    """The ack store exists but cannot be read as one (the log rebuilds it conservatively)."""


def _store_error(path: Path, action: str, exc: BaseException) -> WalError:
    """A clear WalError for an LMDB or OS failure on the ack store at ``path``."""
    text = str(exc)
    if isinstance(exc, (lmdb.DiskError, lmdb.MapFullError)) or "No space" in text:
        hint = "free disk space"
    elif isinstance(exc, (lmdb.ReadonlyError, PermissionError)) or "ermission" in text or "Read-only" in text:
        hint = f"make {path} writable by this user (and its file system read-write)"
    else:
        hint = "check the disk"
    return WalError(f"cannot {action} the WAL's acknowledgements in {path}: {text}; {hint}. Nothing appended is "
                    f"lost: acks not yet saved only mean those events are delivered again")


_DAMAGE = (lmdb.InvalidError, lmdb.CorruptedError, lmdb.VersionMismatchError, lmdb.BadValsizeError,
           lmdb.PageNotFoundError, lmdb.InvalidParameterError)


class AckStore:
    """Persists an :class:`AckState` in an LMDB environment, in batches, from a background thread."""

    def __init__(self, path: Path, *, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 flush_batch: int = DEFAULT_FLUSH_BATCH) -> None:
        self.path = path
        try:
            path.mkdir(exist_ok=True)
            # metasync=False: a crash can lose at most the last commit, i.e. some redeliveries;
            # flush(durable=True) forces both flushes before compaction deletes anything.
            self.env = lmdb.open(str(path), map_size=256 << 20, subdir=True, max_dbs=1, metasync=False,
                                 sync=True, lock=True)
        except _DAMAGE as exc:
            raise AckStoreDamaged(f"the ack store {path} is damaged: {exc}") from exc
        except (lmdb.Error, OSError) as exc:
            raise _store_error(path, "open", exc) from exc
        self.flush_interval = flush_interval
        self.flush_batch = flush_batch
        self._flushed_changes = 0
        self._saved = False                       # the state given to start() is what LMDB holds
        self._synced = False                      # ... and LMDB's meta page is synced too
        self._flush_lock = threading.Lock()       # one snapshot-and-commit at a time, in order
        self._cond = threading.Condition()
        self._armed = False                       # unsaved acks are waiting; the timer runs
        self._armed_at = 0.0
        self._urgent = False                      # a full batch is waiting: save now
        self._stopping = False
        self._state: AckState | None = None
        self._thread: threading.Thread | None = None
        self.error: WalError | None = None        # the last background save's failure, until one succeeds
        self.commits = 0
        self.commit_seconds = 0.0

    def load(self) -> AckState | None:
        """The saved state (None if nothing was saved); raises :class:`AckStoreDamaged` if unreadable."""
        try:
            with self.env.begin() as txn:
                raw = txn.get(_KEY)
        except _DAMAGE as exc:
            raise AckStoreDamaged(f"the ack store {self.path} is damaged: {exc}") from exc
        except lmdb.Error as exc:
            raise _store_error(self.path, "read", exc) from exc
        if raw is None:
            return None
        try:
            state = AckState.from_bytes(raw)
        except (ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
            raise AckStoreDamaged(f"the ack state in {self.path} is unreadable: {exc}") from exc
        if self._state is None:                   # loading what start() will be given
            self._saved, self._flushed_changes = True, state.changes
        return state

    def start(self, state: AckState) -> None:
        """Save ``state`` from a background thread from now on (see :meth:`note`)."""
        self._state = state
        self._thread = threading.Thread(target=self._run, name="orgloop-wal-acks", daemon=True)
        self._thread.start()

    def note(self) -> None:
        """Tell the saver acks arrived (cheap: takes a lock only to start the timer or on a full batch)."""
        state = self._state
        if state is None or (self._armed and (self._urgent or
                                              state.changes - self._flushed_changes < self.flush_batch)):
            return
        with self._cond:
            if not self._armed:
                self._armed = True
                self._armed_at = time.monotonic()
                self._cond.notify()
            if not self._urgent and state.changes - self._flushed_changes >= self.flush_batch:
                self._urgent = True
                self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while True:
                cond.wait_for(lambda: self._armed or self._stopping)
                if self._stopping:
                    return
                if not self._urgent:
                    left = self.flush_interval - (time.monotonic() - self._armed_at)
                    cond.wait_for(lambda: self._urgent or self._stopping, max(0.0, left))
                    if self._stopping:
                        return                        # close() saves what is left
                self._armed = self._urgent = False
                cond.release()
                try:
                    assert self._state is not None
                    self.flush(self._state)
                except WalError as exc:
                    if self.error is None or str(exc) != str(self.error):
                        log.error("%s", exc)
                    self.error = exc
                finally:
                    cond.acquire()

    def flush(self, state: AckState, durable: bool = False) -> None:
        """Save ``state`` now (``durable``: also sync LMDB's meta page). Raises :class:`WalError`."""
        with self._flush_lock:
            changes = state.changes
            unchanged = changes == self._flushed_changes and self._saved
            if unchanged and (self._synced or not durable):
                return
            t0 = time.perf_counter()
            try:
                if not unchanged:                 # nothing new: only the sync is missing (needs no space)
                    blob = state.to_bytes()
                    with self.env.begin(write=True) as txn:
                        txn.put(_KEY, blob)
                if durable:
                    self.env.sync(True)
            except lmdb.Error as exc:
                raise _store_error(self.path, "save", exc) from exc
            self._flushed_changes = changes
            self._saved, self._synced = True, durable
            self.error = None
            self.commits += 1
            self.commit_seconds += time.perf_counter() - t0

    def close(self, state: AckState | None) -> None:
        """Stop the saver, save ``state`` durably (if given) and close LMDB, even if the save fails."""
        if self._thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join()
            self._thread = None
        try:
            if state is not None:
                self.flush(state, durable=True)
        finally:
            self.env.close()
