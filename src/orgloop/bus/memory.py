"""InMemoryBus: Tier 1 for development, tests and library use. Nothing survives the process."""
from __future__ import annotations

import itertools
import threading
from typing import Any, Iterator, Sequence

from pydantic import Field

from orgloop.bus.base import BusBase
from orgloop.plugins import PluginConfig

__all__ = ["InMemoryBus", "MemoryBusOptions"]


class MemoryBusOptions(PluginConfig):
    """``runtime.bus_options`` of the ``memory`` bus."""

    max_inflight: int = Field(100_000, ge=1, description="events handed to dispatch and not yet acked")


class InMemoryBus(BusBase):
    """Events live in a dict until acked; ``publish`` returns at once (no durability)."""

    durable = False
    config_model = MemoryBusOptions

    def __init__(self, max_inflight: int = 100_000) -> None:
        super().__init__(max_inflight)
        self._events: dict[int, dict[str, Any]] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def _store(self, events: list[dict[str, Any]]) -> Sequence[int]:
        with self._lock:
            first = next(self._next)
            self._next = itertools.count(first + len(events))
            seqs = range(first, first + len(events))
            self._events.update(zip(seqs, events))
        return seqs

    def _ack_many(self, seqs: Sequence[int]) -> None:
        with self._lock:
            for s in seqs:
                self._events.pop(s, None)

    def _unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        with self._lock:
            items = sorted(self._events.items())
        if items:
            yield [s for s, _ in items], [e for _, e in items]
