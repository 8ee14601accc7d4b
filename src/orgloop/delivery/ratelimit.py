"""Token-bucket rate limiting for a route's ``max_rate``.

Tokens accrue at ``rate_per_s`` up to ``burst``; each delivery spends one. The bucket starts full.

>>> clock = [0.0]
>>> bucket = TokenBucket.from_spec("2/s", burst=2, clock=lambda: clock[0])
>>> bucket.try_acquire(), bucket.try_acquire(), bucket.try_acquire()
(True, True, False)
>>> bucket.delay_for(1)
0.5
>>> clock[0] = 0.5; bucket.try_acquire()
True
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from orgloop.delivery._checks import number
from orgloop.units import parse_rate

__all__ = ["TokenBucket"]

# Refill arithmetic is floating point: waiting exactly delay_for(n) seconds can leave the bucket a
# rounding error short of n. Grant when within this many tokens, so the wait a caller was told is
# always enough.
_ROUNDING = 1e-9


class TokenBucket:
    """Allow ``rate_per_s`` events per second on average and at most ``burst`` at once.

    ``burst`` defaults to one second's worth of tokens, and at least one. Thread-safe.
    """

    def __init__(self, rate_per_s: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = number("rate_per_s", rate_per_s, strictly_above=True)
        self.burst = max(1.0, self.rate) if burst is None else number("burst", burst, minimum=1.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str, burst: float | None = None,
                  clock: Callable[[], float] = time.monotonic) -> TokenBucket:
        """Build from a project-file rate such as ``"100/s"`` or ``"10/min"``."""
        return cls(parse_rate(spec), burst, clock)

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:  # a clock that steps back grants nothing extra
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def _check(self, n: float) -> float:
        n = number("n", n, strictly_above=True)
        if n > self.burst:
            raise ValueError(f"cannot take {n:g} tokens at once from a bucket whose burst is {self.burst:g}")
        return n

    def try_acquire(self, n: float = 1) -> bool:
        """Take ``n`` tokens if they are there now; never waits."""
        n = self._check(n)
        with self._lock:
            self._refill()
            if self._tokens + _ROUNDING >= n:
                self._tokens -= n
                return True
            return False

    def acquire_up_to(self, n: int) -> int:
        """Take as many whole tokens as are there now, up to ``n``; return how many (batch delivery)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, not {n!r}")
        with self._lock:
            self._refill()
            granted = min(n, int(self._tokens + _ROUNDING))
            self._tokens -= granted
            return granted

    def delay_for(self, n: float = 1) -> float:
        """Seconds from now until ``n`` tokens will be there (0.0 if they are there already)."""
        n = self._check(n)
        with self._lock:
            self._refill()
            missing = n - self._tokens
            return 0.0 if missing <= _ROUNDING else missing / self.rate

    @property
    def tokens(self) -> float:
        """Tokens available right now."""
        with self._lock:
            self._refill()
            return self._tokens
