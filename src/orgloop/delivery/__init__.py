"""Delivery: per-actor lanes, rate limits, retries, circuit breakers and dead letters.

Each takes an injectable clock (and the retry policy an injectable random source), so callers and
tests decide what time it is.
"""
from __future__ import annotations

from orgloop.delivery.breaker import BreakerState, CircuitBreaker
from orgloop.delivery.ratelimit import TokenBucket
from orgloop.delivery.retry import BACKOFFS, RetryPolicy

__all__ = ["BACKOFFS", "BreakerState", "CircuitBreaker", "RetryPolicy", "TokenBucket"]
