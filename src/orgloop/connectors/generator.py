"""``generator`` source: synthetic events at a set rate, or as fast as the pipeline takes them.

Config: ``rate`` (events/s; 0 or absent = unlimited), ``type`` (default ``resource.changed``),
``payload_size`` (bytes of padding in ``payload.data``), ``count`` (stop after N), ``sources`` (emit
round-robin under N source ids ``<id>-0 … <id>-(N-1)`` instead of the source's own id; for benchmarks).
The checkpoint is the number of events generated so far, so a restart continues the sequence. Event ids
are derived from (source id, number), so an event generated again after a crash has the same id (which
lets a ``dedup`` transform recognise it).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Literal

import xxhash
from pydantic import Field

from orgloop.event import now_iso
from orgloop.plugins import PluginConfig

__all__ = ["GeneratorSource", "GeneratorConfig"]


class GeneratorConfig(PluginConfig):
    """Settings of the ``generator`` source."""

    rate: float = Field(0, ge=0, description="events per second; 0 = as fast as the pipeline takes them")
    type: Literal["resource.changed", "actor.stopped", "message.received"] = "resource.changed"
    payload_size: int = Field(0, ge=0, description="bytes of padding in payload.data")
    count: int | None = Field(None, ge=0, description="stop after this many events")
    sources: int = Field(0, ge=0, description="emit round-robin under this many source ids <id>-0 ...")


class GeneratorSource:
    config_model = GeneratorConfig

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        cfg = GeneratorConfig.model_validate(config)
        self.id = source_id
        self.rate = cfg.rate
        self.type = cfg.type
        self.count = cfg.count
        fanout = cfg.sources
        self.source_ids = [f"{source_id}-{i}" for i in range(fanout)] if fanout else [source_id]
        self.padding = "x" * cfg.payload_size
        self._clock = clock
        self._sleep = sleep
        self._start: float | None = None
        self._start_n = 0

    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        n = int(checkpoint or 0)
        if self.count is not None:
            max_events = min(max_events, int(self.count) - n)
            if max_events <= 0:
                return [], checkpoint
        if self.rate:
            now = self._clock()
            if self._start is None:
                self._start, self._start_n = now, n
            due = self._start_n + int((now - self._start) * self.rate)
            if due <= n:   # ahead of schedule: wait for the next event's time
                self._sleep((n + 1 - self._start_n) / self.rate - (now - self._start))
                due = n + 1
            max_events = min(max_events, max(1, due - n))
        ts = now_iso()
        ids = self.source_ids
        k = len(ids)
        digest = xxhash.xxh3_64_hexdigest
        salt = self.id + ":"
        events = []
        for i in range(n, n + max_events):
            h = digest((salt + str(i)).encode())
            events.append({"id": "evt_" + h, "timestamp": ts, "source": ids[i % k], "type": self.type,
                           "provenance": {"platform": "generator"}, "payload": {"n": i, "data": self.padding},
                           "trace_id": "trc_" + h})
        return events, str(n + len(events))

    def close(self) -> None:
        pass
