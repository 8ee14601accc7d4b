"""Ack tracking: an event is acked on the bus only when every route it matched is finished with it.

"Finished" means delivered, dead-lettered, or dropped by a transform. Events that matched one route
(the common case) need no bookkeeping at all; only fan-out keeps a countdown. Acks go to the bus in
batches (at least every ``flush_interval``), never one by one.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable, Sequence

__all__ = ["AckTracker"]


class AckTracker:
    def __init__(self, ack_many: Callable[[Sequence[int]], None], *, batch: int = 1024,
                 flush_interval: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self._ack_many = ack_many
        self._pending: dict[int, int] = {}
        self._ready: list[int] = []
        self._lock = threading.Lock()
        self._batch = batch
        self._interval = flush_interval
        self._clock = clock
        self._last = clock()
        self.acked = 0

    def expect(self, seq: int, deliveries: int) -> None:
        """``seq`` will be finished by ``deliveries`` separate calls to :meth:`done` (only needed when > 1)."""
        if deliveries > 1:
            with self._lock:
                self._pending[seq] = self._pending.get(seq, 0) + deliveries - 1

    def add(self, seq: int, extra: int) -> None:
        """A transform split one delivery into ``extra + 1``."""
        if extra > 0:
            with self._lock:
                self._pending[seq] = self._pending.get(seq, 0) + extra

    def done_many(self, seqs: Iterable[int]) -> None:
        """Each call finishes one delivery of each seq; seqs with nothing left are acked (batched)."""
        flush = None
        with self._lock:
            pending = self._pending
            ready = self._ready
            if pending:
                for s in seqs:
                    left = pending.get(s)
                    if left is None:
                        ready.append(s)
                    elif left == 1:
                        del pending[s]
                    else:
                        pending[s] = left - 1
            else:
                ready.extend(seqs)
            if len(ready) >= self._batch or (ready and self._clock() - self._last >= self._interval):
                flush, self._ready = ready, []
                self._last = self._clock()
        if flush:
            self._ack_many(flush)
            self.acked += len(flush)

    def flush(self) -> None:
        with self._lock:
            flush, self._ready = self._ready, []
            self._last = self._clock()
        if flush:
            self._ack_many(flush)
            self.acked += len(flush)

    @property
    def in_flight(self) -> int:
        return len(self._pending)
