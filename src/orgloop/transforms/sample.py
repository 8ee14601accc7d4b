"""``sample`` transform: keep a share of events, or at most a rate of them.

Config (at least one of ``fraction`` and ``rate``; with both, an event must pass both):

* ``fraction`` (0 < f ≤ 1): keep this share of events, chosen by a hash of the values at ``key``
  (dot-paths, default ``[id]``). The choice is deterministic: the same event (a redelivery, a copy
  with the same id, the same event on another host) always gets the same answer.
* ``rate`` (``10/min``, ``5/s``): rate sampling. Keep at most this many events per time unit and drop the
  rest (a token bucket that starts full, ``burst`` events deep: by default the count written in ``rate``,
  so ``10/min`` allows ten at once). ``per`` (dot-paths) keeps one bucket per value, e.g. ``[source]``
  or ``[payload.repo]``; buckets are kept per route, the 10,000 most recently used. Rate state is in
  memory: after a restart every bucket starts full again, and a redelivered event spends a token again.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any, Callable

import msgpack
import xxhash
from pydantic import AfterValidator, Field, model_validator

from orgloop.delivery.ratelimit import TokenBucket
from orgloop.plugins import PluginConfig
from orgloop.transforms import TransformContext
from orgloop.transforms.expr import MISSING, get_path
from orgloop.units import RATE_PATTERN, parse_rate

__all__ = ["SampleTransform", "SampleConfig"]

_MAX_BUCKETS = 10_000


def _rate(text: str) -> str:
    parse_rate(text)
    return text


class SampleConfig(PluginConfig):
    """Settings of the ``sample`` transform."""

    fraction: float | None = Field(None, gt=0, le=1, description="share of events kept (by a hash of key)")
    key: list[str] = Field(default_factory=lambda: ["id"], min_length=1, description="dot-paths hashed for fraction")
    rate: Annotated[str, AfterValidator(_rate)] | None = Field(
        None, description="at most this many events per time unit: 10/min, 5/s", json_schema_extra={
            "pattern": RATE_PATTERN})
    burst: int | None = Field(None, ge=1, description="events allowed at once (default: the count in rate)")
    per: list[str] = Field(default_factory=list, description="dot-paths: one rate bucket per value")

    @model_validator(mode="after")
    def _something(self) -> "SampleConfig":
        if self.fraction is None and self.rate is None:
            raise ValueError("sample needs fraction, rate or both")
        return self


def _values(event: dict[str, Any], paths: list[tuple[str, ...]]) -> bytes:
    values = [get_path(event, p) for p in paths]
    return msgpack.packb([None if v is MISSING else v for v in values], default=str)


class SampleTransform:
    config_model = SampleConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        cfg = SampleConfig.model_validate(config)
        self.name = name
        self._keys = [tuple(k.split(".")) for k in cfg.key]
        # keep when the hash, as a fraction of 2**64, falls below the share
        self._threshold = None if cfg.fraction is None else int(cfg.fraction * (1 << 64))
        self._rate = None if cfg.rate is None else parse_rate(cfg.rate)
        count = float(cfg.rate.strip().split("/")[0]) if cfg.rate else 1.0    # "10/min": 10 (validated)
        self._burst = float(cfg.burst or max(1.0, count))
        self._per = [tuple(p.split(".")) for p in cfg.per]
        self._buckets: OrderedDict[tuple[str, bytes], TokenBucket] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock
        self.dropped = 0

    def _in_share(self, event: dict[str, Any]) -> bool:
        return self._threshold is None or xxhash.xxh3_64_intdigest(_values(event, self._keys)) < self._threshold

    def _within_rate(self, event: dict[str, Any], route: str) -> bool:
        if self._rate is None:
            return True
        group = (route, _values(event, self._per) if self._per else b"")
        with self._lock:
            bucket = self._buckets.get(group)
            if bucket is None:
                bucket = self._buckets[group] = TokenBucket(self._rate, self._burst, clock=self._clock)
                if len(self._buckets) > _MAX_BUCKETS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(group)
            return bucket.try_acquire()

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        if self._in_share(event) and self._within_rate(event, ctx.route):
            return [event]
        self.dropped += 1
        return []

    def close(self) -> None:
        pass
