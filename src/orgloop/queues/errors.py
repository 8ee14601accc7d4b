"""Exceptions and argument checks shared by both queue twins, so both raise the same messages."""
from __future__ import annotations

import queue as _stdlib_queue

from orgloop.errors import OrgloopError

__all__ = ["QueueError", "QueueClosed", "QueueFull", "Empty", "POLICIES", "check_maxsize", "check_policy",
           "check_timeout", "check_max_items"]

POLICIES = ("drop_oldest", "block")


class QueueError(OrgloopError):
    """Base class of bounded-queue errors."""


class QueueClosed(QueueError):
    """``put`` after ``close()``, or ``get`` on a closed queue that is empty.

    ``accepted`` says how many items of the failed call were queued before the queue closed
    (only ``put_many`` can accept some and then fail).
    """

    def __init__(self, accepted: int = 0) -> None:
        self.accepted = accepted
        suffix = f" ({accepted} item(s) of this call were queued first)" if accepted else ""
        super().__init__("the queue is closed" + suffix)


class QueueFull(QueueError, _stdlib_queue.Full):
    """A ``block``-policy put found no room before its timeout.

    ``accepted`` says how many items of the call were queued before the timeout.
    """

    def __init__(self, maxsize: int, accepted: int = 0) -> None:
        self.maxsize = maxsize
        self.accepted = accepted
        super().__init__(f"the queue is full ({maxsize} items) and the put timed out; "
                         f"{accepted} item(s) of this call were queued")


class Empty(QueueError, _stdlib_queue.Empty):
    """``get`` found no item before its timeout."""

    def __init__(self) -> None:
        super().__init__("no item arrived before the timeout")


def check_maxsize(maxsize: object) -> int:
    """Return ``maxsize`` if it is an int >= 1, else raise ``ValueError``/``TypeError``."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
    if maxsize < 1:
        raise ValueError(f"maxsize must be at least 1, not {maxsize}")
    return maxsize


def check_policy(policy: object) -> str:
    """Return ``policy`` if it is one of :data:`POLICIES`."""
    if not isinstance(policy, str) or policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    return policy


def check_timeout(timeout: object) -> float | None:
    """Return ``None`` (wait forever) or a non-negative number of seconds."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    if not timeout >= 0:  # also rejects NaN
        raise ValueError(f"timeout must be a non-negative number of seconds or None, not {timeout!r}")
    return float(timeout)


def check_max_items(max_items: object) -> int:
    """Return ``max_items`` if it is an int >= 1."""
    if isinstance(max_items, bool) or not isinstance(max_items, int):
        raise TypeError(f"max_items must be an int, not {type(max_items).__name__}")
    if max_items < 1:
        raise ValueError(f"max_items must be at least 1, not {max_items}")
    return max_items
