"""A per-route circuit breaker: stop calling an actor that keeps failing, then probe it.

``closed`` (normal) opens after ``failure_threshold`` consecutive failures. While ``open`` every
``allow()`` is refused. The first ``allow()`` once ``cooldown`` seconds have passed moves to
``half_open`` and lets exactly one probe through; every other ``allow()`` is refused until that
probe's outcome is recorded: success closes the breaker, failure opens it again with a fresh
cooldown. Every change is reported to ``on_change(old, new)``, e.g. to log ``breaker.open``.

Callers must record the outcome of every call ``allow()`` let through, or a half-open breaker waits
for its probe forever. Outcomes recorded while ``open`` (calls let through before it opened) are
ignored; while ``half_open`` the next outcome is taken as the probe's.

>>> now = [0.0]
>>> b = CircuitBreaker(failure_threshold=2, cooldown=10, clock=lambda: now[0])
>>> b.record_failure(); b.record_failure(); b.state, b.allow()
(<BreakerState.OPEN: 'open'>, False)
>>> now[0] = 10; b.allow(), b.allow(), b.state
(True, False, <BreakerState.HALF_OPEN: 'half_open'>)
>>> b.record_success(); b.state
<BreakerState.CLOSED: 'closed'>
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from orgloop.delivery._checks import known_keys, number, positive_int
from orgloop.units import parse_duration

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Closed → open → half-open (one probe) → closed or open again. Thread-safe."""

    def __init__(self, failure_threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[BreakerState, BreakerState], None] | None = None) -> None:
        self.failure_threshold = positive_int("failure_threshold", failure_threshold)
        self.cooldown = number("cooldown", cooldown)
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], clock: Callable[[], float] = time.monotonic,
                  on_change: Callable[[BreakerState, BreakerState], None] | None = None) -> CircuitBreaker:
        """Build from a route's ``circuit_breaker`` block (``cooldown`` is a duration string)."""
        known_keys("circuit_breaker", dict(spec), ("failure_threshold", "cooldown"))
        kwargs: dict[str, Any] = {}
        if "failure_threshold" in spec:
            kwargs["failure_threshold"] = spec["failure_threshold"]
        if "cooldown" in spec:
            kwargs["cooldown"] = parse_duration(spec["cooldown"])
        return cls(**kwargs, clock=clock, on_change=on_change)

    @property
    def state(self) -> BreakerState:
        """The current state. ``open`` turns ``half_open`` only when ``allow()`` is next called."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted while closed."""
        return self._failures

    def cooldown_remaining(self) -> float:
        """Seconds until ``allow()`` may let a probe through; 0.0 unless open."""
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In ``half_open`` only the single probe is allowed."""
        with self._lock:
            state = self._state
            if state is BreakerState.CLOSED:
                return True
            if state is BreakerState.HALF_OPEN or self._clock() < self._opened_at + self.cooldown:
                return False
            self._state = BreakerState.HALF_OPEN  # this caller carries the probe
        self._changed(state, BreakerState.HALF_OPEN)
        return True

    def record_success(self) -> None:
        """A call that ``allow()`` let through succeeded."""
        if self._failures == 0 and self._state is BreakerState.CLOSED:
            return   # the hot path: nothing to reset (a racing failure is counted by record_failure)
        with self._lock:
            state = self._state
            self._failures = 0
            if state is not BreakerState.HALF_OPEN:
                return
            self._state = BreakerState.CLOSED
        self._changed(state, BreakerState.CLOSED)

    def record_failure(self) -> None:
        """A call that ``allow()`` let through failed."""
        with self._lock:
            state = self._state
            if state is BreakerState.OPEN:
                return
            if state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures < self.failure_threshold:
                    return
            self._failures = 0
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
        self._changed(state, BreakerState.OPEN)

    def _changed(self, old: BreakerState, new: BreakerState) -> None:
        # Called outside the lock: a logger may be slow, or may even read the breaker back.
        if self._on_change is not None:
            self._on_change(old, new)
