"""Pure-Python bounded queue: the readable twin of ``_queue.pyx`` (same API, same behaviour).

A ``collections.deque`` guarded by one lock, with two conditions for the waiting cases.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from orgloop.queues.errors import (
    Empty,
    QueueClosed,
    QueueFull,
    check_max_items,
    check_maxsize,
    check_policy,
    check_timeout,
)

__all__ = ["BoundedQueue"]


class BoundedQueue:
    """A FIFO holding at most ``maxsize`` items; see :mod:`orgloop.queues` for the contract."""

    def __init__(self, maxsize: int = 1000, policy: str = "drop_oldest") -> None:
        self._maxsize = check_maxsize(maxsize)
        self._policy = check_policy(policy)
        self._block = self._policy == "block"
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._dropped = 0
        self._closed = False

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @property
    def policy(self) -> str:
        return self._policy

    @property
    def dropped(self) -> int:
        """Items evicted by ``drop_oldest`` since the queue was made."""
        return self._dropped

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return (f"<BoundedQueue len={len(self._items)} maxsize={self._maxsize} policy={self._policy}"
                f" dropped={self._dropped}{' closed' if self._closed else ''}>")

    def put(self, item: Any, timeout: float | None = None) -> int:
        """Add one item; return how many items were dropped to make room (0 or 1)."""
        return self.put_many([item], timeout)

    def put_many(self, items: Iterable[Any], timeout: float | None = None) -> int:
        """Add every item in order; return how many items were dropped to make room."""
        seq = items if type(items) is list else list(items)
        deadline = self._deadline(timeout)
        if self._block:
            return self._put_blocking(seq, deadline)
        with self._lock:
            evicted = self._put_dropping(seq)
        # The evicted items die only now, outside the lock, because a __del__ may use the queue.
        return len(evicted)

    def put_many_evicting(self, items: Iterable[Any], timeout: float | None = None) -> list[Any]:
        """Like :meth:`put_many`, but return the dropped items themselves (oldest first)."""
        seq = items if type(items) is list else list(items)
        if self._block:
            self.put_many(seq, timeout)
            return []
        with self._lock:
            evicted = self._put_dropping(seq)
        return evicted

    def get(self, timeout: float | None = None) -> Any:
        """Remove and return the oldest item, waiting up to ``timeout`` seconds (``None``: forever).

        Raises :class:`Empty` on timeout and :class:`QueueClosed` once the queue is closed and drained.
        """
        deadline = self._deadline(timeout)
        with self._lock:
            if not self._wait_for_items(deadline):
                raise Empty()
            item = self._items.popleft()
            if self._block:
                self._not_full.notify()
            return item

    def get_many(self, max_items: int, timeout: float | None = None) -> list[Any]:
        """Wait up to ``timeout`` for one item, then return up to ``max_items`` without waiting more.

        Returns ``[]`` on timeout; raises :class:`QueueClosed` once the queue is closed and drained.
        """
        max_items = check_max_items(max_items)
        deadline = self._deadline(timeout)
        with self._lock:
            if not self._wait_for_items(deadline):
                return []
            items = self._items
            take = min(max_items, len(items))
            out = [items.popleft() for _ in range(take)]
            if self._block:
                self._not_full.notify(take)
            return out

    def close(self) -> None:
        """Refuse further puts and wake every waiter; queued items can still be taken."""
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    # --- internals (called with the lock held) -------------------------------------------------

    def _put_blocking(self, seq: list[Any], deadline: float | None) -> int:
        with self._lock:
            accepted = 0
            while True:
                if self._closed:
                    raise QueueClosed(accepted)
                take = min(self._maxsize - len(self._items), len(seq) - accepted)
                if take > 0:
                    self._items.extend(seq[accepted:accepted + take])
                    accepted += take
                    self._not_empty.notify(take)
                if accepted >= len(seq):
                    return 0
                if not self._wait(self._not_full, deadline):
                    raise QueueFull(self._maxsize, accepted)

    def _put_dropping(self, seq: list[Any]) -> list[Any]:
        """Queue ``seq``, evicting the oldest items as needed; return everything dropped."""
        if self._closed:
            raise QueueClosed()
        n = len(seq)
        skipped = max(0, n - self._maxsize)  # the head of a batch larger than the queue never fits
        kept = n - skipped
        popleft = self._items.popleft
        evicted = [popleft() for _ in range(len(self._items) + kept - self._maxsize)]
        if skipped:
            evicted += seq[:skipped]
            seq = seq[skipped:]
        self._items.extend(seq)
        self._dropped += len(evicted)
        if kept:
            self._not_empty.notify(kept)
        return evicted

    def _wait_for_items(self, deadline: float | None) -> bool:
        """True once an item is there; False on timeout; QueueClosed if closed and empty."""
        while not self._items:
            if self._closed:
                raise QueueClosed()
            if not self._wait(self._not_empty, deadline):
                return False
        return True

    @staticmethod
    def _deadline(timeout: float | None) -> float | None:
        seconds = check_timeout(timeout)
        return None if seconds is None else time.monotonic() + seconds

    @staticmethod
    def _wait(cond: threading.Condition, deadline: float | None) -> bool:
        """Wait once on ``cond``; False if the deadline has already passed."""
        if deadline is None:
            cond.wait()
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        cond.wait(min(remaining, threading.TIMEOUT_MAX))
        return True
