"""Bounded FIFO queues between the router and the delivery workers.

``BoundedQueue(maxsize=1000, policy="drop_oldest" | "block")`` holds at most ``maxsize`` items.

* ``drop_oldest`` (default): a put on a full queue evicts the oldest item and counts it in
  ``dropped``; puts never wait.
* ``block``: a put on a full queue waits for room, up to ``timeout`` seconds, then raises
  :class:`QueueFull` (``accepted`` says how much of a ``put_many`` got in first).

``get``/``get_many`` wait up to ``timeout`` seconds (``None``: forever) for an item. After
``close()`` puts raise :class:`QueueClosed`, waiters wake up, and gets drain what is left before
raising :class:`QueueClosed` themselves. Every method is safe to call from many threads.

This module is the only one that picks between the compiled ring buffer (``_queue.pyx``) and its
pure-Python twin (``_queue_py.py``); import ``BoundedQueue`` from here.

>>> q = BoundedQueue(maxsize=2)
>>> q.put_many(["a", "b", "c"])
1
>>> q.get_many(10), q.dropped
(['b', 'c'], 1)
"""
from __future__ import annotations

from orgloop._twins import load_twins
from orgloop.queues.errors import Empty, QueueClosed, QueueError, QueueFull

__all__ = ["BoundedQueue", "Empty", "QueueClosed", "QueueError", "QueueFull", "implementation", "twins"]

twins = load_twins("orgloop.queues._queue", "orgloop.queues._queue_py")

BoundedQueue = twins.active.BoundedQueue


def implementation() -> str:
    """``"compiled"`` or ``"pure"``: which twin ``BoundedQueue`` is."""
    return twins.name
