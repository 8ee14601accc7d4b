"""What the API pollers (``github``, ``linear``) share: the back-off gate, the time cursor, batching.

- :class:`PollGate` decides whether a poll may touch the API now. A rate limit closes it until the
  server's reset time; a failure closes it for an exponentially growing pause (5 s doubling to 15 min).
  The runtime asks the source for its next poll time (``poll_delay``), so a closed gate costs no request.
- :class:`TimeCursor` is an "updated since" cursor that loses nothing and repeats nothing: APIs compare
  timestamps with ``>=`` at second (GitHub) or millisecond (Linear) resolution, so the cursor keeps the
  keys already emitted at exactly its timestamp and skips only those.
- :class:`Batches` hands out a poll's events ``max_events`` at a time; the new checkpoint goes with the
  last batch only, so a crash in between re-reads (same natural ids) rather than skips.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

__all__ = ["PollGate", "TimeCursor", "Batches", "RateLimited"]

MIN_BACKOFF = 5.0
MAX_BACKOFF = 900.0


class RateLimited(Exception):
    """The API asked us to wait ``wait`` seconds."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class PollGate:
    """When the next request may go out; counts failures for the back-off."""

    def __init__(self, name: str, log: logging.Logger, clock: Callable[[], float]) -> None:
        self.name = name
        self.log = log
        self.clock = clock
        self.not_before = 0.0
        self.failures = 0
        self.rate_limited = 0

    def open(self) -> bool:
        return self.clock() >= self.not_before

    def delay(self, default: float) -> float:
        """Seconds until the next poll: the poll interval, or longer while the gate is closed."""
        return max(default, self.not_before - self.clock())

    def succeeded(self) -> None:
        self.failures = 0

    def failed(self, reason: str) -> float:
        """Close the gate after a failure; returns the pause (logged, never with request headers)."""
        self.failures += 1
        pause = min(MAX_BACKOFF, MIN_BACKOFF * 2 ** (self.failures - 1))
        self.not_before = self.clock() + pause
        self.log.warning("%s: poll failed (%s); next attempt in %.0fs, cursor unchanged", self.name, reason, pause)
        return pause

    def limited(self, exc: RateLimited) -> None:
        """Close the gate until the API's reset time (at least 1 s)."""
        self.rate_limited += 1
        wait = max(1.0, exc.wait)
        self.not_before = max(self.not_before, self.clock() + wait)
        self.log.warning("%s: %s; pausing %.0fs, cursor unchanged", self.name, exc, wait)


class TimeCursor:
    """``since`` (an ISO timestamp string, compared as text: both APIs use fixed-width UTC) plus the keys
    already emitted at exactly ``since``."""

    def __init__(self, since: str, seen: list[str] | None = None) -> None:
        self.since = since
        self.seen = set(seen or ())
        self._next_since = since
        self._next_seen = set(self.seen)

    @classmethod
    def load(cls, data: Any, default_since: str) -> "TimeCursor":
        if isinstance(data, dict) and isinstance(data.get("since"), str):
            return cls(data["since"], [k for k in data.get("seen", []) if isinstance(k, str)])
        return cls(default_since)

    def is_new(self, stamp: str, key: str) -> bool:
        """Whether an item stamped ``stamp`` with natural key ``key`` was not emitted before."""
        return stamp > self.since or (stamp == self.since and key not in self.seen)

    def advance(self, stamp: str, key: str) -> None:
        """Record an item as emitted (or deliberately filtered out): the next cursor passes it."""
        if stamp > self._next_since:
            self._next_since, self._next_seen = stamp, {key}
        elif stamp == self._next_since:
            self._next_seen.add(key)

    def dump(self) -> dict[str, Any]:
        """The cursor after everything passed to :meth:`advance`."""
        return {"since": self._next_since, "seen": sorted(self._next_seen)}


class Batches:
    """Events of one poll, handed out in slices; the checkpoint moves only with the last slice."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._checkpoint: str | None = None

    def __bool__(self) -> bool:
        return bool(self._events) or self._checkpoint is not None

    def fill(self, events: list[dict[str, Any]], checkpoint: str) -> None:
        self._events, self._checkpoint = events, checkpoint

    def take(self, max_events: int, current: str | None) -> tuple[list[dict[str, Any]], str | None]:
        out, self._events = self._events[:max_events], self._events[max_events:]
        if self._events:
            return out, current
        checkpoint, self._checkpoint = self._checkpoint, None
        return out, checkpoint
