"""When to retry a failed delivery, and how long to wait first.

Attempts are counted as deliveries *made so far*: after the first failure ``attempt`` is 1, so
``delay(1)`` is the wait before the first retry and ``should_retry(1)`` says whether it happens.
``max_attempts`` counts every delivery, the first included (``max_attempts=1`` never retries).

Jitter is proportional and only ever shortens the wait: the delay is drawn uniformly from
``[base * (1 - jitter), base]`` where ``base = min(max_delay, backoff(attempt))``. So retries of many
events spread out, the configured backoff is an upper bound, and ``max_delay`` is never exceeded.
``jitter=1.0`` is the "full jitter" scheme (uniform in ``[0, base]``); ``jitter=0`` is deterministic.

A target may ask for a longer wait (HTTP ``Retry-After``): :meth:`RetryPolicy.wait` honours it, but never
beyond ``max_retry_after`` (default 300 s), so one answer cannot park a lane for a day.

>>> policy = RetryPolicy(max_attempts=4, backoff="exponential", initial_delay=1.0, max_delay=3.0, jitter=0)
>>> [policy.delay(a) for a in (1, 2, 3)], policy.should_retry(3), policy.should_retry(4)
([1.0, 2.0, 3.0], True, False)
>>> policy.wait(1, retry_after=7.0), policy.wait(1, retry_after=86400.0), policy.wait(2, retry_after=None)
(7.0, 300.0, 2.0)
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from orgloop.delivery._checks import known_keys, number, positive_int
from orgloop.units import parse_duration

__all__ = ["BACKOFFS", "RetryPolicy"]

BACKOFFS = ("exponential", "linear", "fixed")
_MAX_EXPONENT = 1023  # 2.0 ** 1024 overflows; any larger exponent is far past max_delay anyway


class RetryPolicy:
    """Retry timing for one route. Thread-safe as long as ``rng`` is (``random.Random`` is)."""

    def __init__(self, max_attempts: int = 3, backoff: str = "exponential", initial_delay: float = 1.0,
                 max_delay: float = 60.0, jitter: float = 0.2, rng: random.Random | None = None,
                 max_retry_after: float = 300.0) -> None:
        self.max_attempts = positive_int("max_attempts", max_attempts)
        if backoff not in BACKOFFS:
            raise ValueError(f"backoff must be one of {', '.join(BACKOFFS)}; got {backoff!r}")
        self.backoff = backoff
        self.initial_delay = number("initial_delay", initial_delay)
        self.max_delay = number("max_delay", max_delay)
        self.jitter = number("jitter", jitter, maximum=1.0)
        self.max_retry_after = number("max_retry_after", max_retry_after)
        self._rng = rng if rng is not None else random.Random()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], rng: random.Random | None = None) -> RetryPolicy:
        """Build from a route's ``retry`` block: durations are strings such as ``"1s"``.

        >>> RetryPolicy.from_spec({"max_attempts": 5, "initial_delay": "500ms", "max_delay": "1m"}).max_delay
        60.0
        """
        known_keys("retry", dict(spec), ("max_attempts", "backoff", "initial_delay", "max_delay", "jitter",
                                         "max_retry_after"))
        kwargs: dict[str, Any] = {k: spec[k] for k in ("max_attempts", "backoff", "jitter") if k in spec}
        for key in ("initial_delay", "max_delay", "max_retry_after"):
            if key in spec:
                kwargs[key] = parse_duration(spec[key])
        return cls(**kwargs, rng=rng)

    def should_retry(self, attempt: int) -> bool:
        """True if another delivery may follow ``attempt`` failed ones."""
        return positive_int("attempt", attempt) < self.max_attempts

    def base_delay(self, attempt: int) -> float:
        """The backoff before retry number ``attempt``, capped at ``max_delay``, without jitter."""
        attempt = positive_int("attempt", attempt)
        if self.backoff == "exponential":
            raw = self.initial_delay * 2.0 ** min(attempt - 1, _MAX_EXPONENT)
        elif self.backoff == "linear":
            raw = self.initial_delay * attempt
        else:
            raw = self.initial_delay
        return min(raw, self.max_delay)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry), jitter included."""
        base = self.base_delay(attempt)
        if not self.jitter:
            return base
        return base * (1.0 - self.jitter * self._rng.random())

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt``: :meth:`delay`, or longer when the target asked
        for ``retry_after`` seconds, which counts up to ``max_retry_after`` only."""
        delay = self.delay(attempt)
        if retry_after is None or not retry_after > delay:      # NaN and shorter requests change nothing
            return delay
        return min(retry_after, max(self.max_retry_after, delay))
