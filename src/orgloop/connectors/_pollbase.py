"""What the API pollers (``github``, ``linear``) share: the back-off gate, the time cursor, batching.

- :class:`PollGate` decides whether a poll may touch the API now. A rate limit closes it until the
  server's reset time; a failure closes it for an exponentially growing pause (5 s doubling to 15 min).
  The runtime asks the source for its next poll time (``poll_delay``), so a closed gate costs no request.
- :class:`TimeCursor` is an "updated since" cursor that loses nothing and repeats nothing: APIs compare
  timestamps with ``>=`` at second (GitHub) or millisecond (Linear) resolution, so the cursor keeps the
  keys already emitted at exactly its timestamp and skips only those.
- :class:`Batches` hands out a poll's events ``max_events`` at a time; the new checkpoint goes with the
  last batch only, so a crash in between re-reads (same natural ids) rather than skips.
- :class:`PollingSource` is the source API on top of these: one poll reads through the gate into the
  batches, with the checkpoint a JSON object; :meth:`PollingSource.paged` walks a paginated list.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterator, TypeVar

from orgloop.connectors._apiclient import ApiError, JsonClient, Response
from orgloop.units import parse_duration

__all__ = ["PollGate", "TimeCursor", "Batches", "RateLimited", "PollingSource", "MAX_PAGES"]

MIN_BACKOFF = 5.0
MAX_BACKOFF = 900.0
MAX_PAGES = 20

_Next = TypeVar("_Next")


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


class PollingSource:
    """The source API of a poller (``poll``, ``poll_delay``, ``close``). A subclass sets ``platform``,
    ``stamp`` and ``empty_state`` and reads one poll in :meth:`read`."""

    platform = ""                              # names the source in logs and its HTTP User-Agent
    empty_state: dict[str, Any] = {}           # the state of a first start (copied)

    def __init__(self, source_id: str, *, api_url: str, timeout: float, lookback: str,
                 clock: Callable[[], float], log: logging.Logger) -> None:
        self.id = source_id
        self.clock = clock
        self.log = log
        self.name = f"{self.platform} source {source_id}"
        self.client = JsonClient(api_url, timeout=timeout, user_agent=f"orgloop-{self.platform}-source")
        self.gate = PollGate(self.name, log, clock)
        self._lookback = lookback
        self._batches = Batches()
        self.requests = 0

    @staticmethod
    def stamp(epoch: float) -> str:
        """``epoch`` as the API writes timestamps (fixed-width UTC, so they compare as text)."""
        raise NotImplementedError

    def read(self, state: dict[str, Any], initial: str, events: list[dict[str, Any]]) -> None:
        """Read one poll: append to ``events`` and update ``state`` (the checkpoint) in place. On
        :class:`RateLimited` or :class:`ApiError` whatever was appended and updated so far is kept."""
        raise NotImplementedError

    # ---------------------------------------------------------------- source API
    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        if self._batches:
            return self._batches.take(max_events, checkpoint)
        if not self.gate.open():
            return [], checkpoint
        state = self._load(checkpoint)
        initial = state.setdefault("initial", self.stamp(self.clock() - parse_duration(self._lookback)))
        events: list[dict[str, Any]] = []
        try:
            self.read(state, initial, events)
        except RateLimited as exc:
            self.gate.limited(exc)
        except ApiError as exc:
            self.gate.failed(str(exc))
        else:
            self.gate.succeeded()
        self._batches.fill(events, json.dumps(state, separators=(",", ":")))   # key order kept: oldest first
        return self._batches.take(max_events, checkpoint)

    def poll_delay(self, default: float) -> float:
        """Seconds until the next poll: the poll interval, or until a rate limit or back-off ends."""
        return 0.0 if self._batches else self.gate.delay(default)

    def close(self) -> None:
        self.client.close()

    # ---------------------------------------------------------------- helpers
    def _load(self, checkpoint: str | None) -> dict[str, Any]:
        if not checkpoint:
            return dict(self.empty_state)
        try:
            data = json.loads(checkpoint)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.log.warning("%s: unreadable checkpoint, starting from now", self.name)
            return dict(self.empty_state)
        return data

    def paged(self, fetch: Callable[[_Next | None], tuple[list[dict[str, Any]], _Next | None]],
              what: str) -> Iterator[list[dict[str, Any]]]:
        """The pages of a list, at most :data:`MAX_PAGES`: ``fetch(None)`` reads the first page, and
        ``fetch(nxt)`` the one after, where ``nxt`` is what the previous call gave with its page (None: last)."""
        nxt: _Next | None = None
        for _ in range(MAX_PAGES):
            page, nxt = fetch(nxt)
            yield page
            if nxt is None:
                return
        self.log.warning("%s: stopped after %d pages of %s", self.name, MAX_PAGES, what)

    def wait_until(self, resp: Response, reset: float) -> float:
        """Seconds from now (the server's clock when it sent one) until the epoch ``reset``, 1 s to ~1 h."""
        now = resp.server_time() or self.clock()
        return min(3700.0, max(1.0, reset - now + 1))
