"""Ack tracking: an event is acked on the bus only when every route it matched is finished with it.

"Finished" means delivered, dead-lettered, or dropped by a transform. Events that matched one route
(the common case) need no bookkeeping at all; only fan-out and transform splits keep a countdown.
Finished refs are forwarded to the bus at once, in the same call: the bus batches the *commit* of acks
(the WAL writes them to LMDB every flush interval), so the tracker adds no delay of its own.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable, Sequence

__all__ = ["AckTracker"]


class AckTracker:
    def __init__(self, ack_many: Callable[[Sequence[Any]], None]) -> None:
        self._ack_many = ack_many
        self._pending: dict[Any, int] = {}
        self._lock = threading.Lock()
        self.acked = 0

    def expect(self, ref: Any, deliveries: int) -> None:
        """``ref`` will be finished by ``deliveries`` separate calls to :meth:`done_many` (only needed when > 1)."""
        if deliveries > 1:
            with self._lock:
                self._pending[ref] = self._pending.get(ref, 0) + deliveries - 1

    def add(self, ref: Any, extra: int) -> None:
        """A transform split one delivery into ``extra + 1``."""
        if extra > 0:
            with self._lock:
                self._pending[ref] = self._pending.get(ref, 0) + extra

    def done_many(self, refs: Iterable[Any]) -> None:
        """Each call finishes one delivery of each ref; refs with nothing left are acked on the bus now."""
        pending = self._pending
        if pending:
            ready = []
            with self._lock:
                for s in refs:
                    left = pending.get(s)
                    if left is None:
                        ready.append(s)
                    elif left == 1:
                        del pending[s]
                    else:
                        pending[s] = left - 1
        else:
            ready = refs if isinstance(refs, list) else list(refs)
        if ready:
            self._ack_many(ready)
            with self._lock:
                self.acked += len(ready)

    @property
    def in_flight(self) -> int:
        return len(self._pending)
