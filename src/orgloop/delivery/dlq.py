"""The dead-letter store: deliveries that gave up on a route (or were pushed out of a full queue).

It is a WAL directory of its own (``<data dir>/dlq``), so a dead letter is as durable as an event on
the bus. An entry is a delivery record: ``route``, ``actor``, ``event`` (as that route's actor would have
received it: after the route's transforms; for ``halted``, as the halting transform received it),
``reason`` (``gave_up`` after the retry budget, ``backpressure`` when an explicit drop-oldest queue pushed
it out, ``halted`` when a transform with ``on_error: halt`` failed), ``error``, ``attempts``, ``time``.
Removing an entry acks it in the store's WAL; compaction frees the space.

Replaying publishes each entry as a *redelivery record* (type ``orgloop.redeliver``, the route and the
event in its payload) on the bus: the router hands the event to that route's lane as it is, without
matching or transforms, so it reaches that route only. An entry is removed only after the bus accepted
its record (``publish`` returned: durable on a durable bus), so a crash in between gives a duplicate,
never a loss. Replays of one store run one at a time (a second waits), so no entry is handed over twice;
dead letters may be added meanwhile.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import msgpack

from orgloop.event import now_iso
from orgloop.wal import Wal
from orgloop.wal import tools as waltools

__all__ = ["DeadLetterStore", "read_dead_letters", "redelivery", "REASONS", "REDELIVER_TYPE"]

REASONS = ("gave_up", "backpressure", "halted")
REDELIVER_TYPE = "orgloop.redeliver"
REDELIVER_SOURCE = "orgloop.dlq"


def dead_letter(event: dict[str, Any], *, route: str, actor: str, reason: str, error: str | None = None,
                attempts: int = 0) -> dict[str, Any]:
    """Build one dead-letter entry."""
    return {"event": event, "route": route, "actor": actor, "reason": reason, "error": error,
            "attempts": attempts, "time": now_iso()}


def redelivery(entry: dict[str, Any], entry_id: int) -> dict[str, Any]:
    """The bus record that replays one dead letter to its route (see the module docstring)."""
    event = entry.get("event") or {}
    return {"id": event.get("id"), "timestamp": now_iso(), "source": REDELIVER_SOURCE, "type": REDELIVER_TYPE,
            "trace_id": event.get("trace_id"),
            "payload": {"route": entry.get("route"), "actor": entry.get("actor"), "event": event,
                        "dead_letter": entry_id}}


class DeadLetterStore:
    """Durable dead letters, opened for writing by the runtime (one process at a time)."""

    def __init__(self, path: str | Path, *, segment_size: int = 4 << 20, **wal_options: Any) -> None:
        self.path = Path(path)
        self.wal = Wal(self.path, segment_size=segment_size, **wal_options)
        self._replaying = threading.Lock()

    def add_many(self, entries: list[dict[str, Any]]) -> Sequence[int]:
        """Store entries durably (fdatasync under the default policy); returns their ids."""
        return self.wal.append_events(entries) if entries else []

    def entries(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(id, entry)`` for every entry not yet removed, oldest first."""
        for batch in self.wal.replay(unacked_only=True, decode=True):
            yield from zip(batch.seqs, batch.records)

    def count(self) -> int:
        return self.wal.stats()["unacked"]

    def remove(self, ids: Sequence[int]) -> None:
        if ids:
            self.wal.ack_many(ids)

    def replay(self, publish: Callable[[list[dict[str, Any]]], Any], ids: Sequence[int] | None = None,
               batch_size: int = 1000) -> list[int]:
        """Publish redelivery records of entries (all, or those of ``ids`` that exist), then remove them;
        returns the ids replayed, oldest first.

        Each batch is published before it is removed, so a crash in between means a duplicate, never a loss.
        """
        wanted = set(ids) if ids is not None else None
        done: list[int] = []
        with self._replaying:
            batch_ids: list[int] = []
            batch_events: list[dict[str, Any]] = []
            for seq, entry in self.entries():
                if wanted is not None and seq not in wanted:
                    continue
                batch_ids.append(seq)
                batch_events.append(redelivery(entry, seq))
                if len(batch_ids) >= batch_size:
                    self._hand_over(publish, batch_ids, batch_events)
                    done += batch_ids
                    batch_ids, batch_events = [], []
            if batch_ids:
                self._hand_over(publish, batch_ids, batch_events)
                done += batch_ids
            self.wal.flush_acks()
        return done

    def _hand_over(self, publish: Callable[[list[dict[str, Any]]], Any], ids: list[int],
                   events: list[dict[str, Any]]) -> None:
        publish(events)
        self.remove(ids)

    def purge(self) -> int:
        """Remove every entry; returns how many were removed."""
        n = self.wal.next_seq - 1
        count = self.count()
        if n:
            self.wal.ack_range(1, n)
            self.wal.flush_acks()
            self.wal.rotate()
            self.wal.compact()
        return count

    def close(self) -> None:
        self.wal.close()

    def __enter__(self) -> "DeadLetterStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_dead_letters(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Read entries without opening the store for writing (safe while the runtime runs)."""
    path = Path(path)
    if not path.exists():
        return
    view = waltools.open_view(path)
    acks = waltools.read_acks(view)
    for seg in view.segments:
        for first, records in waltools.iter_segment(view, seg, collect=True, on_damage=lambda d: None):
            for seq, raw in enumerate(records, first):
                if acks is None or not acks.is_acked(seq):
                    yield seq, msgpack.unpackb(raw)
