"""InMemoryBus: Tier 1 for development, tests and library use. Nothing survives the process."""
from __future__ import annotations

import threading
from typing import Any, Iterator, Sequence

from pydantic import Field

from orgloop.bus.base import BusBase
from orgloop.plugins import PluginConfig

__all__ = ["InMemoryBus", "MemoryBusOptions"]


class MemoryBusOptions(PluginConfig):
    """``runtime.bus_options`` of the ``memory`` bus."""

    max_inflight: int | None = Field(100_000, ge=1, description="publishers wait while this many events are "
                                                                "not fetched yet (null: never)")


class InMemoryBus(BusBase):
    """Events live in a dict until acked; ``publish`` returns at once (no durability).

    Refs are seqs (ints from 1), carried in the delivered envelope as ``seq``. Publishers wait while
    ``max_inflight`` events are not fetched yet, since memory is all this bus has.
    """

    durable = False
    config_model = MemoryBusOptions

    def __init__(self, max_inflight: int | None = 100_000) -> None:
        super().__init__(max_inflight)
        self._events: dict[int, dict[str, Any]] = {}   # unacked, by seq
        self._next = 1          # the next seq to assign
        self._cursor = 1        # the next seq to hand out
        self._lock = threading.Lock()

    def _store(self, events: list[dict[str, Any]]) -> Sequence[int]:
        with self._lock:
            first = self._next
            self._next = first + len(events)
            seqs = range(first, self._next)
            self._events.update(zip(seqs, events))
        return seqs

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[int], list[dict[str, Any]]]:
        if self._cursor >= self._next and not self._wait_for_events(lambda: self._cursor < self._next, timeout):
            return [], []
        refs: list[int] = []
        out: list[dict[str, Any]] = []
        with self._lock:
            seq, end, events = self._cursor, self._next, self._events
            while seq < end and len(out) < max_events:
                ev = events.get(seq)
                if ev is not None:        # acked before it was fetched: skip
                    ev["seq"] = seq
                    refs.append(seq)
                    out.append(ev)
                seq += 1
            self._cursor = seq
        return refs, out

    def _ack_many(self, seqs: Sequence[int]) -> None:
        with self._lock:
            for s in seqs:
                self._events.pop(s, None)

    def _unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        with self._lock:
            items = sorted(self._events.items())
        if items:
            yield [s for s, _ in items], [e for _, e in items]
