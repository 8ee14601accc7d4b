"""FileWalBus: Tier 1 production bus on orgloop's write-ahead log.

``publish_many`` returns once the events are durable under the WAL's sync policy (``always`` by
default: fdatasynced, shared by concurrent publishers). ``ack`` marks the WAL; when dispatch starts,
events that were published but not acked before a crash or restart are redelivered first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from orgloop.bus.base import BusBase
from orgloop.wal import Wal

__all__ = ["FileWalBus"]


class FileWalBus(BusBase):
    durable = True

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
