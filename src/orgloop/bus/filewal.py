"""FileWalBus: Tier 1 production bus on orgloop's write-ahead log.

``publish_many`` returns once the events are durable under the WAL's sync policy (``always`` by
default: fdatasynced, shared by concurrent publishers). ``ack`` marks the WAL; when dispatch starts,
events that were published but not acked before a crash or restart are redelivered first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

from pydantic import Field

from orgloop.bus.base import BusBase
from orgloop.plugins import Duration, PluginConfig, Size
from orgloop.wal import Wal

__all__ = ["FileWalBus", "FileWalOptions"]


class FileWalOptions(PluginConfig):
    """``runtime.bus_options`` of the ``filewal`` bus (the WAL's settings; see docs/wal-format.md)."""

    path: Path | None = Field(None, description="the WAL directory (default: <data dir>/wal)")
    max_inflight: int = Field(100_000, ge=1, description="events handed to dispatch and not yet acked")
    compact_every: int = Field(50_000, ge=1, description="compact the ack index after this many acks")
    encoding: Literal["msgpack", "jsonl"] | None = None
    sync: Literal["always", "interval", "none"] = "always"
    sync_interval_ms: float = Field(10.0, gt=0)
    segment_size: Size = 64 << 20
    max_segment_age: Duration | None = None
    max_bytes: Size | None = None
    full_policy: Literal["error", "drop_oldest"] = "error"
    sync_window: Size = 8 << 20
    ack_flush_interval: float = Field(0.1, gt=0, description="seconds between ack commits")
    implementation: Literal["compiled", "pure"] | None = None


class FileWalBus(BusBase):
    durable = True
    config_model = FileWalOptions

    def __init__(self, path: str | Path, *, max_inflight: int = 100_000, compact_every: int = 50_000,
                 **wal_options: Any) -> None:
        super().__init__(max_inflight)
        self.wal = Wal(path, **wal_options)
        # Everything below this seq existed before we opened: redelivered (if unacked) when dispatch starts.
        self._recover_below = self.wal.next_seq
        self._compact_every = compact_every
        self._acks_since_compact = 0

    def _store(self, events: list[dict[str, Any]]) -> Sequence[int]:
        return self.wal.append_events(events)

    def _ack_many(self, seqs: Sequence[int]) -> None:
        wal = self.wal
        if isinstance(seqs, range) and seqs.step == 1:
            wal.ack_range(seqs.start, seqs.stop - 1)
        elif len(seqs) == 1:
            wal.ack(seqs[0])
        else:
            wal.ack_many(seqs)
        self._acks_since_compact += len(seqs)
        if self._acks_since_compact >= self._compact_every:
            self._acks_since_compact = 0
            wal.compact()

    def _recover(self) -> Iterable[tuple[Sequence[int], list[dict[str, Any]]]]:
        for batch in self.wal.replay(unacked_only=True, decode=True):
            seqs, events = batch.seqs, batch.records
            if seqs[0] >= self._recover_below:
                break
            if seqs[-1] >= self._recover_below:
                keep = [i for i, s in enumerate(seqs) if s < self._recover_below]
                seqs, events = [seqs[i] for i in keep], [events[i] for i in keep]
            yield seqs, events

    def _unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        for batch in self.wal.replay(unacked_only=True, decode=True):
            yield batch.seqs, batch.records

    def _close(self) -> None:
        self.wal.close()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "wal": self.wal.stats()}
