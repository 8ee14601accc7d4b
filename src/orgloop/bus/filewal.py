"""FileWalBus: Tier 1 production bus on orgloop's write-ahead log.

``publish_many`` returns once the events are durable under the WAL's sync policy (``always`` by
default: fdatasynced, shared by concurrent publishers). Refs are WAL seqs, carried in the delivered
envelope as ``seq``; ``ack`` marks the WAL.

The WAL is the buffer: publishers never wait for consumers, and ``fetch`` reads only as far as the
consumer asks. The read cursor starts at the oldest unacked record, so what an earlier run left unacked
is handed out first. Just-published events are kept in a bounded in-memory tail (``tail_max`` events)
so a consumer that keeps up never reads the disk. When the tail overflows (the consumer is behind), it
is dropped and starts again at the next publish; the consumer reads the gap before it from the log in
small chunks (``read_chunk`` bytes), with one sequential reader per gap, then continues from the tail.
"""
from __future__ import annotations

import bisect
import collections
import threading
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from pydantic import Field

from orgloop.bus.base import BusBase
from orgloop.plugins import Duration, PluginConfig, Size
from orgloop.wal import ReplayBatch, Wal

__all__ = ["FileWalBus", "FileWalOptions"]

DEFAULT_TAIL_MAX = 1024     # events kept in memory for dispatch (one figure for the config and the constructor)


class FileWalOptions(PluginConfig):
    """``runtime.bus_options`` of the ``filewal`` bus (the WAL's settings; see docs/wal-format.md)."""

    path: Path | None = Field(None, description="the WAL directory (default: <data dir>/wal)")
    max_inflight: int | None = Field(None, ge=1, description="publishers wait while this many events are "
                                                             "not fetched yet (default: never; the log is the buffer)")
    compact_every: int = Field(50_000, ge=1, description="compact the ack index after this many acks")
    tail_max: int = Field(DEFAULT_TAIL_MAX, ge=1, description="recent events kept in memory for dispatch")
    read_chunk: Size = Field(256 << 10, description="bytes read from the log at a time when catching up")
    encoding: Literal["msgpack", "jsonl"] | None = None
    sync: Literal["always", "interval", "none"] = "always"
    sync_interval_ms: float = Field(10.0, gt=0)
    segment_size: Size = 64 << 20
    max_segment_age: Duration | None = None
    max_bytes: Size | None = None
    full_policy: Literal["error", "drop_oldest"] = "error"
    sync_window: Size = 8 << 20
    ack_flush_interval: float = Field(0.05, gt=0, description="seconds between ack commits (and between checks "
                                                              "that in-order acks riding on the log's marks keep up)")
    ack_flush_batch: int = Field(1000, ge=1, description="commit acks at once when this many are pending (unless "
                                                         "they ride on the log's durable marks)")
    implementation: Literal["compiled", "pure"] | None = None
    strict: bool = Field(False, description="refuse to start if the log holds unreadable durable records "
                                            "(default: keep every readable record and count the rest as lost)")


class FileWalBus(BusBase):
    durable = True
    config_model = FileWalOptions

    def __init__(self, path: str | Path, *, max_inflight: int | None = None, compact_every: int = 50_000,
                 tail_max: int = DEFAULT_TAIL_MAX, read_chunk: int = 256 << 10, **wal_options: Any) -> None:
        super().__init__(max_inflight)
        self.wal = Wal(path, **wal_options)
        self._compact_every = compact_every
        self._acks_since_compact = 0
        self._lock = threading.Lock()
        self._stored = self.wal.next_seq            # every seq below this is durable
        self._cursor = self.wal.acks.watermark + 1   # the next seq to hand out
        self._tail: collections.deque[dict[str, Any]] = collections.deque()   # events of seqs tail_lo...
        self._tail_lo = 0
        self._tail_max = tail_max
        self._read_chunk = read_chunk
        self._reader: Iterator[ReplayBatch] | None = None
        self._reader_stop = 0
        self._batch: tuple[Sequence[int], list[bytes]] | None = None   # the reader's batch not yet handed out
        self.wal_reads = 0

    def _admit(self, count: int) -> None:
        """While the consumer keeps taking events (it is not waiting for credit), a publish waits for room
        in the tail instead of pushing the consumer onto the log; a slow actor never holds publishers."""
        tail = self._tail
        while (tail and len(tail) + count > self._tail_max and self._thread is not None
               and not self._credit_waiting and not self._closed):
            self._cv.wait(0.05)

    def _store(self, events: list[dict[str, Any]]) -> Sequence[int]:
        seqs = self.wal.append_events(events)
        with self._lock:
            tail = self._tail
            if tail and self._tail_lo + len(tail) == seqs.start:
                tail.extend(events)
            elif self._cursor <= seqs.start:     # (re)start the tail here; the consumer reads the gap from the log
                tail.clear()
                self._tail_lo = seqs.start
                tail.extend(events)
            if len(tail) > self._tail_max:      # the consumer is behind: the tail starts again at the next publish
                tail.clear()
            if seqs.stop > self._stored:
                self._stored = seqs.stop
        return seqs

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[int], list[dict[str, Any]]]:
        if self._cursor >= self._stored and not self._wait_for_events(lambda: self._cursor < self._stored, timeout):
            return [], []
        for _ in range(2):      # a gap read may find only acked records; then the tail follows at once
            with self._lock:
                tail, cursor = self._tail, self._cursor
                while tail and self._tail_lo < cursor:        # already read from the log
                    tail.popleft()
                    self._tail_lo += 1
                if tail and self._tail_lo == cursor:
                    take = min(max_events, len(tail))
                    out = [tail.popleft() for _ in range(take)]
                    self._tail_lo += take
                    self._cursor = cursor + take
                    refs = range(cursor, cursor + take)
                    for seq, ev in zip(refs, out):
                        ev["seq"] = seq
                    return refs, out
                gap_end = self._tail_lo if tail else self._stored
            got = self._read_log(max_events, gap_end)
            if got[1]:
                return got
        return [], []

    def _read_log(self, max_events: int, gap_end: int) -> tuple[Sequence[int], list[dict[str, Any]]]:
        """Up to ``max_events`` unacked records from the cursor on, read from the log (a reader runs from the
        cursor to ``gap_end``, where the tail starts, or to the end of what is durable)."""
        self.wal_reads += 1
        while True:
            if self._batch is None:
                if self._reader is None:
                    if self._cursor >= gap_end:
                        return [], []
                    self._reader_stop = gap_end
                    self._reader = self.wal.replay(self._cursor, unacked_only=True, read_chunk=self._read_chunk)
                nxt = next(self._reader, None)
                if nxt is None:
                    self._reader = None
                    self._cursor = max(self._cursor, self._reader_stop)
                    continue
                self._batch = (nxt.seqs, nxt.records)
            seqs, records = self._batch
            lo = bisect.bisect_left(seqs, self._cursor)
            stop = bisect.bisect_left(seqs, self._reader_stop)
            hi = min(lo + max_events, stop)
            if hi < stop:
                self._batch = (seqs[hi:], records[hi:])
            else:
                self._batch = None
                if stop < len(seqs):                 # the reader's snapshot went past what is durable
                    self._reader = None
            if hi <= lo:
                if self._reader is None and self._batch is None:
                    self._cursor = max(self._cursor, self._reader_stop)
                continue
            refs = seqs[lo:hi]
            out = self.wal.decode_records(records[lo:hi])
            for seq, ev in zip(refs, out):
                ev["seq"] = seq
            self._cursor = refs[-1] + 1
            return refs, out

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

    def _unacked(self) -> Iterator[tuple[Sequence[int], list[dict[str, Any]]]]:
        for batch in self.wal.replay(unacked_only=True, decode=True):
            yield batch.seqs, batch.records

    def _close(self) -> None:
        self._reader = None
        self._batch = None
        self.wal.close()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "wal_reads": self.wal_reads, "wal": self.wal.stats()}
