"""Acknowledgement state: a watermark plus the acked ranges of seqs above it, persisted in batches.

Acks may arrive out of order. Every seq ≤ ``watermark`` is acked (or was lost to damage and counted).
Acked seqs above the watermark are kept as sorted, disjoint, non-adjacent ranges, so a million acks
waiting behind one slow event cost one range: memory, each check and each save stay small. The newest
of them wait in a small set until a question needs them in order (see :class:`AckState`), so an ack
costs the caller a set insertion.

:class:`AckStore` saves the state to LMDB from a background thread, at most ``flush_interval`` after
the first unsaved ack or as soon as ``flush_batch`` acks are waiting, never per event. Losing the
last batch on a crash only means those events are delivered again (at-least-once), never lost.

While the log appends, acks made in order need no LMDB commit at all: every write round's durable mark
carries the ack watermark to disk with the round's own fdatasync, and the next open takes the highest
watermark of the active segment's marks. The saver then only checks, twice per ``flush_interval``, that
the marks keep up, and commits to LMDB when they do not (the log went quiet, or acks arrive out of
order), before a segment is sealed, and at close.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import lmdb
import msgpack
import xxhash

from orgloop.errors import WalError

__all__ = ["AckState", "AckStore", "AckStoreDamaged", "DEFAULT_FLUSH_INTERVAL", "DEFAULT_FLUSH_BATCH"]

log = logging.getLogger("orgloop.wal")

_KEY = b"acks"
_SEALED = b"\xc1"          # never a msgpack first byte: a saved state with a checksum follows
DEFAULT_FLUSH_INTERVAL = 0.05
DEFAULT_FLUSH_BATCH = 1000


def _runs(ordered: list[int]) -> Iterable[tuple[int, int]]:
    """The maximal runs ``(lo, hi)`` of consecutive ints in ``ordered`` (sorted, unique).

    For sorted unique ints ``ordered[x] - x`` never decreases and is constant along a run, so each
    run's end is found by galloping then bisecting: a few steps per run, however long it is.
    """
    n = len(ordered)
    j = 0
    while j < n:
        key = ordered[j] - j
        k, step = j, 1                       # ordered[k] is in the run; gallop while ordered[k + step] is
        while k + step < n and ordered[k + step] - (k + step) == key:
            k += step
            step *= 2
        lo, hi = k + 1, min(k + step, n)      # the run ends in [lo, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if ordered[mid] - mid == key:
                lo = mid + 1
            else:
                hi = mid
        yield ordered[j], ordered[lo - 1]
        j = lo


class AckState:
    """In-memory ack bookkeeping; thread-safe.

    An ack is cheap on the caller's path: a seq that moves the watermark moves it (and on through what
    is already acked above it); any other goes into a small unordered set, ``_loose``. The set is folded
    into the ranges when a question about the seqs above the watermark is asked, or when it holds
    ``LOOSE_MAX`` seqs, so memory stays bounded however long one seq stays unacked.
    """

    LOOSE_MAX = 1 << 16

    def __init__(self, watermark: int = 0, ranges: Iterable[tuple[int, int]] = (), lost: int = 0,
                 quarantined: Iterable[int] = ()) -> None:
        self.watermark = watermark
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._held = 0                              # seqs in the ranges
        self._loose: set[int] = set()               # acked seqs not folded into the ranges yet
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
            if self._loose:
                self._advance()
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

    def _advance(self) -> None:
        """Move the watermark on through the loose seqs and ranges that follow it (caller holds the lock)."""
        w = self.watermark
        loose, starts, ends = self._loose, self._starts, self._ends
        while True:
            if w + 1 in loose:
                w += 1
                loose.discard(w)
            elif starts and starts[0] <= w + 1:
                self._held -= ends[0] - starts[0] + 1
                w = max(w, ends[0])
                del starts[0], ends[0]
            else:
                break
        self.watermark = w

    def _fold(self) -> None:
        """Merge the loose seqs into the ranges (caller holds the lock)."""
        if not self._loose:
            return
        ordered = sorted(self._loose)
        self._loose.clear()
        for lo, hi in _runs(ordered[bisect.bisect_right(ordered, self.watermark):]):
            self._add(lo, hi)

    def ack(self, seq: int) -> None:
        with self._lock:
            w = self.watermark
            if seq == w + 1:
                self.watermark = seq
                if self._loose or self._starts:
                    self._advance()
            elif seq > w:
                self._loose.add(seq)
                if len(self._loose) >= self.LOOSE_MAX:
                    self._fold()
            self.changes += 1

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Ack seqs given in any order (duplicates and already-acked seqs are harmless)."""
        if not isinstance(seqs, (list, tuple, range)):
            seqs = list(seqs)
        if not seqs:
            return
        with self._lock:
            loose = self._loose
            loose.update(seqs)
            if self.watermark + 1 in loose:
                self._advance()
            if len(loose) >= self.LOOSE_MAX:
                self._fold()
            self.changes += len(seqs)

    def ack_range(self, lo: int, hi: int) -> None:
        """Ack every seq in ``[lo, hi]``."""
        if hi < lo:
            return
        with self._lock:
            self._add(lo, hi)
            self.changes += hi - lo + 1

    # ------------------------------------------------------------------ queries
    def raise_watermark(self, acked: int) -> int:
        """Ack every seq up to ``acked`` (what a durable mark says was acknowledged); returns how many of
        them were not acked here before."""
        w = self.watermark
        if acked <= w:
            return 0
        added = self.unacked_in(w + 1, acked)
        self.ack_range(w + 1, acked)
        return added

    def held_upper_bound(self) -> int:
        """At least the number of acked seqs held above the watermark, without folding (cheap)."""
        return self._held + len(self._loose)

    @property
    def held(self) -> int:
        """How many acked seqs are held above the watermark."""
        with self._lock:
            self._fold()
            return self._held

    @property
    def highest(self) -> int:
        """The highest acked seq (the watermark if nothing is held above it)."""
        with self._lock:
            self._fold()
            return self._ends[-1] if self._ends else self.watermark

    @property
    def range_count(self) -> int:
        """How many disjoint ranges hold those seqs."""
        with self._lock:
            self._fold()
            return len(self._starts)

    def ranges(self) -> list[tuple[int, int]]:
        """The acked ranges above the watermark, in order."""
        with self._lock:
            self._fold()
            return list(zip(self._starts, self._ends))

    def is_acked(self, seq: int) -> bool:
        if seq <= self.watermark:
            return True
        with self._lock:
            if seq in self._loose:
                return True
            i = bisect.bisect_right(self._starts, seq) - 1
            return i >= 0 and self._ends[i] >= seq

    def acked_in(self, first: int, last: int) -> int:
        """How many seqs of ``[first, last]`` are acked."""
        with self._lock:
            self._fold()
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
            self._fold()
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
        """The state as saved (the loose seqs as a sorted list: saving never has to fold them)."""
        with self._lock:
            watermark, starts, ends = self.watermark, list(self._starts), list(self._ends)
            loose = sorted(self._loose)
            lost, quarantined = self.lost, sorted(self.quarantined)
        loose = loose[bisect.bisect_right(loose, watermark):]
        body = msgpack.packb({"v": 1, "watermark": watermark, "above": list(zip(starts, ends)), "loose": loose,
                              "lost": lost, "quarantined": quarantined})
        return _SEALED + xxhash.xxh3_64_digest(body) + body

    @classmethod
    def from_bytes(cls, raw: bytes) -> "AckState":
        """Parse a saved state; raises ``ValueError`` (or ``TypeError``/``KeyError``) if it is not one.

        A state saved with a checksum must match it: LMDB's pages carry none, and one flipped bit in a
        number could otherwise move the watermark past unacked events. A state saved without one (older
        versions) is taken as it is.
        """
        raw = bytes(raw)
        if raw[:1] == _SEALED:
            digest, raw = raw[1:9], raw[9:]
            if xxhash.xxh3_64_digest(raw) != digest:
                raise ValueError("ack state fails its checksum")
        d = msgpack.unpackb(raw)
        watermark = d["watermark"]
        ranges = [(int(lo), int(hi)) for lo, hi in d.get("above", ())]
        loose = sorted(int(s) for s in d.get("loose", ()))
        if (not isinstance(watermark, int) or watermark < 0 or any(lo > hi or lo < 1 for lo, hi in ranges)
                or (loose and loose[0] < 1)):
            raise ValueError("ack state holds impossible values")
        return cls(watermark, [*ranges, *_runs(sorted(set(loose)))], int(d.get("lost", 0)),
                   (int(q) for q in d.get("quarantined", ())))


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
        self._marked: Callable[[], int] | None = None    # the ack watermark the log's synced marks carry
        self._riding = False                      # acks ride on the marks: no LMDB commit per batch
        self._checked_watermark = 0               # the watermark at the saver's last look
        self._saved_lost = 0                      # what LMDB holds that no mark carries
        self._saved_quarantined = 0
        self.mark_rides = 0

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
            self._saved_lost, self._saved_quarantined = state.lost, len(state.quarantined)
        return state

    def start(self, state: AckState, marked: Callable[[], int] | None = None) -> None:
        """Save ``state`` from a background thread from now on (see :meth:`note`).

        ``marked``: the highest ack watermark carried by the log's durable marks known fdatasynced; while
        it keeps up, acks made in order are not committed to LMDB per batch (see the module docstring).
        """
        self._state = state
        self._marked = marked
        self._checked_watermark = state.watermark + 1     # a ride needs a mark that carried a new ack
        self._thread = threading.Thread(target=self._run, name="orgloop-wal-acks", daemon=True)
        self._thread.start()

    def note(self) -> None:
        """Tell the saver acks arrived (cheap: takes a lock only to start the timer or on a full batch)."""
        state = self._state
        if state is None or (self._armed and (self._urgent or state.changes - self._flushed_changes < self.flush_batch
                                              or self._ride_on(state))):
            return
        with self._cond:
            if not self._armed:
                self._armed = True
                self._armed_at = time.monotonic()
                self._cond.notify()
            if (not self._urgent and not self._ride_on(state)
                    and state.changes - self._flushed_changes >= self.flush_batch):
                self._urgent = True
                self._cond.notify()

    def _ride_on(self, state: AckState) -> bool:
        """Acks ride on the marks and none waits above the watermark that no mark can carry."""
        return self._riding and state.held_upper_bound() < self.flush_batch

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while True:
                cond.wait_for(lambda: self._armed or self._stopping)
                if self._stopping:
                    return
                if not self._urgent:
                    # While acks ride, look twice per interval: an ack a look leaves to the marks is then in
                    # a synced mark or in LMDB by the next look, within one interval of being made.
                    period = self.flush_interval / 2 if self._riding else self.flush_interval
                    left = period - (time.monotonic() - self._armed_at)
                    cond.wait_for(lambda: self._urgent or self._stopping, max(0.0, left))
                    if self._stopping:
                        return                        # close() saves what is left
                self._armed = self._urgent = False
                assert self._state is not None
                if self._ride_marks(self._state):
                    continue
                cond.release()
                try:
                    self.flush(self._state)
                except WalError as exc:
                    if self.error is None or str(exc) != str(self.error):
                        log.error("%s", exc)
                    self.error = exc
                finally:
                    cond.acquire()

    def _ride_marks(self, state: AckState) -> bool:
        """Whether the acks since the last save may stay out of LMDB because the log's durable marks
        carry them (caller holds the condition). True only while the marks keep up: the watermark seen at
        the last look is in a synced mark by now, no more than ``flush_batch`` acks wait above the
        watermark, and nothing only LMDB can hold (losses, quarantined segments) changed. The timer is
        re-armed so that the next look, half an interval later, checks the acks made before this one."""
        marked = self._marked() if self._marked is not None else 0
        watermark, changes = state.watermark, state.changes
        ride = (marked >= self._checked_watermark and state.lost == self._saved_lost
                and len(state.quarantined) == self._saved_quarantined
                and state.held_upper_bound() < self.flush_batch)
        self._checked_watermark = watermark
        self._riding = ride
        if not ride:
            return False
        self.mark_rides += 1
        self._flushed_changes = changes
        self._saved = self._synced = False            # LMDB is behind the marks: a flush writes it
        if marked < watermark:
            self._armed, self._armed_at = True, time.monotonic()    # look again at what the marks lack
        return True

    def save_for_rotation(self, state: AckState) -> None:
        """The log is about to seal its active segment, whose marks the next open will not read: save to
        LMDB the acks that rode on them. A failure is kept in :attr:`error` (those acks would only be
        delivered again), never raised into the rotation."""
        if self._saved:
            return
        try:
            self.flush(state)
        except WalError as exc:
            log.error("%s", exc)
            self.error = exc

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
            self._saved_lost, self._saved_quarantined = state.lost, len(state.quarantined)
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
