"""The pre-writer: fill bytes written into fallocated segments ahead of the appender, in the background.

A new msgpack segment is ``fallocate``d: its blocks are reserved but *unwritten*, so an append there
makes every ``fdatasync`` also commit the conversion of those blocks (a journal commit). Overwriting
blocks that were written before needs none. The pre-writer writes the segment's fill bytes over such
regions (only msgpack segments are fallocated; their fill byte is zero, what an unwritten block reads
as anyway) and fdatasyncs them:
first the active segment from just past the append offset, then the prepared spare. It writes only
while the log is quiet (no append for ``quiet`` seconds): measured here, writing the same bytes twice
while the log appends costs more than it saves.

**Hand-off.** The log's append offset only moves forward, under the log's lock. The pre-writer picks
its next region under that same lock, starting at or after the append offset, and records it as its
*claim* before releasing the lock; everything the writer has submitted (or is writing) lies below the
offset, so the claim never covers it. Before the writer moves the offset into a claimed region, it
waits (:meth:`Prewriter.wait_clear`) until the claim's fill bytes are written (the ``pwrite``; the
``fdatasync`` after it needs no claim): the fill lands before the data, never after. Before a segment stops being the active one or the spare
(rotation, close), the log waits for any claim to finish (:meth:`Prewriter.wait_idle`); no new claim
can start meanwhile, because claiming needs the lock the log holds. A crash or power cut in the middle
of a pre-write changes nothing a reader sees: the region read as fill bytes before and after.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

from orgloop.wal import fileio

__all__ = ["Prewriter", "Target", "CHUNK", "QUIET"]

CHUNK = 256 << 10        # bytes per write (each followed by an fdatasync); the most an append waits for
QUIET = 0.1              # seconds without an append before the pre-writer writes a chunk
_ALIGN = 4096


class Target(NamedTuple):
    """A fallocated segment the pre-writer may fill: from ``start`` (at or past the append offset) to ``end``."""

    path: Path
    start: int
    end: int


class Prewriter:
    """Background writer of fill bytes; see the module docstring for the hand-off with the log's writer.

    ``targets`` is called with ``lock`` held and returns the segments still to fill, most urgent first.
    """

    def __init__(self, lock: threading.RLock, targets: Callable[[], list[Target]], fill: bytes, *,
                 chunk: int | None = None, quiet: float | None = None) -> None:
        self._lock = lock
        self._targets = targets
        self._chunk = chunk or CHUNK
        self._block = fill * self._chunk
        self._quiet = QUIET if quiet is None else quiet
        self._cv = threading.Condition()
        self._claim: tuple[Path, int, int] | None = None
        self._done: dict[Path, int] = {}          # path -> end of the region filled from its start so far
        self._stop = threading.Event()           # set by stop(): also what the thread sleeps on
        self._wake = threading.Event()           # set by poke(): new work
        self._thread: threading.Thread | None = None
        self.last_append = time.monotonic()      # of the writer's latest append (a new log starts busy)
        self.bytes_written = 0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ the writer's side
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="orgloop-wal-prewrite", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """There may be new work (a segment was activated or a spare prepared)."""
        self._wake.set()

    def filled(self, path: Path) -> int:
        """How far ``path`` is filled from the start of its region (0 if the pre-writer never touched it)."""
        with self._cv:
            return self._done.get(path, 0)

    def wait_clear(self, path: Path, end: int) -> None:
        """Return once no claim on ``path`` starts below ``end`` (the writer, before moving its offset there)."""
        claim = self._claim
        if claim is None or claim[0] != path or claim[1] >= end:
            return
        with self._cv:
            while self._claim is not None and self._claim[0] == path and self._claim[1] < end:
                self._cv.wait()

    def wait_idle(self) -> None:
        """Return once no claim is in flight (the caller holds the log's lock, so none can start)."""
        if self._claim is None:
            return
        with self._cv:
            while self._claim is not None:
                self._cv.wait()

    def stop(self) -> None:
        """Stop the thread (an in-flight chunk is finished first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ the pre-writer's side
    def _pick(self) -> tuple[Path, int, int] | None:
        """Claim the next chunk (called with the log's lock held)."""
        targets = self._targets()
        live = {t.path for t in targets}
        with self._cv:
            for path in [p for p in self._done if p not in live]:
                del self._done[path]
            for t in targets:
                lo = max(self._done.get(t.path, 0), -(-t.start // _ALIGN) * _ALIGN)
                if lo < t.end:
                    self._claim = (t.path, lo, min(t.end, lo + self._chunk))
                    return self._claim
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            idle = time.monotonic() - self.last_append
            if idle < self._quiet:
                self._stop.wait(self._quiet - idle)
                continue
            if not self._lock.acquire(timeout=self._quiet):    # busy, or closing (stop() is called under it)
                continue
            try:
                busy = time.monotonic() - self.last_append < self._quiet     # an append came meanwhile
                claim = None if busy else self._pick()
            finally:
                self._lock.release()
            if busy:
                continue
            if claim is None:
                self._wake.wait()
                self._wake.clear()
                continue
            self._wake.clear()
            try:
                self._fill(*claim)
            except OSError as exc:      # a full disk, say: appends find the blocks unwritten, nothing else
                self.error = exc
                return

    def _fill(self, path: Path, lo: int, hi: int) -> None:
        """Write the claimed region, release the claim, then fdatasync (the writer may overwrite the fill
        as soon as it is written: only a fill landing *after* the writer's bytes would destroy them)."""
        fd, pos = -1, lo
        try:
            fd = os.open(path, os.O_RDWR)
            while pos < hi:
                pos += fileio.pwrite(fd, self._block[: hi - pos], pos)
        finally:
            with self._cv:
                if fd >= 0 and pos >= hi:
                    self._done[path] = hi
                self._claim = None
                self._cv.notify_all()
        try:
            fileio.fdatasync(fd)        # commits the blocks' conversion to written, off the append path
            self.bytes_written += hi - lo
        finally:
            os.close(fd)
