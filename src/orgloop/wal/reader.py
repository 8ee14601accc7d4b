"""Walking a segment's frames, shared by the log (replay, recovery) and the offline tools.

The walker never changes anything on disk: it reports damage through a callback and lets the caller
decide (the log erases torn tails and records losses; ``orgloop wal verify`` only reports).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from pathlib import Path
from typing import Any, Callable, Generator, Iterable, NamedTuple

from orgloop.wal.format import ENC_JSONL, FORMAT_VERSION, MARK_FLAG, SegmentHeader, data_start, frame_size
from orgloop.wal.segments import SegmentInfo

__all__ = ["Damage", "WalkEnd", "walk_segment", "drain", "recover_header", "READ_CHUNK"]

READ_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class Damage:
    """Something wrong found while walking a segment; records ``first_seq..last_seq`` are unreadable.

    ``kind`` is one of:

    * ``gap``: bytes ``[offset, offset + extent)`` hold no readable record, and readable records of this
      segment follow them. Whether the records were durable (lost) or never acknowledged (torn) is the
      caller's call: it knows where durability ends (see :class:`WalkEnd`).
    * ``torn_tail``: the active segment's data ends in bytes that are not a valid frame, and no valid
      frame of this segment follows anywhere: an interrupted write. Nothing there was acknowledged under
      ``sync=always``; ``extent`` bytes at ``offset`` may be erased.
    * ``damaged_end``: a sealed segment ends early: its last records are unreadable.
    """

    kind: str
    segment: SegmentInfo
    offset: int
    first_seq: int
    last_seq: int
    extent: int = 0


class WalkEnd(NamedTuple):
    """Where a walk stopped: the end of the last valid frame, the next seq, and what the durable marks
    seen said: the highest offset below which the writer knew everything was fdatasynced, and the highest
    ack watermark (0 if none)."""

    offset: int
    next_seq: int
    durable: int
    acked: int


def _frame_len_hint(buf: bytes, p: int, enc: int) -> int:
    """Bytes the frame at ``buf[p:]`` needs, when its length field is in the buffer (else 0)."""
    try:
        if enc == ENC_JSONL:
            return frame_size(int(buf[p + 24:p + 34]), enc)
        return frame_size(int.from_bytes(buf[p + 4:p + 8], "little") & ~MARK_FLAG, enc)
    except (ValueError, IndexError):
        return 0


def _read_ahead(fd: int, start: int, end: int, chunk: int = READ_CHUNK) -> None:
    """Ask the kernel to start reading the next chunk now, so the disk works while we checksum this one.

    On a cold log this overlaps I/O with the scan instead of adding them up.
    """
    if start < end:
        os.posix_fadvise(fd, start, min(chunk, end - start), os.POSIX_FADV_WILLNEED)


def walk_segment(core: ModuleType, seg: SegmentInfo, end: int, *, collect: bool, at_open: bool,
                 on_damage: Callable[[Damage], None], chunk: int = READ_CHUNK,
                 begin: tuple[int, int] | None = None) -> Generator[tuple[int, list | int], None, WalkEnd]:
    """Yield ``(first_seq, records or count)`` runs of valid frames in ``seg`` up to byte ``end``.

    ``seg.last_seq`` is None for the active segment (its end is found by scanning). A bad frame is
    never taken for the end of the data while a valid frame of this segment follows it anywhere: the
    walk reports a ``gap`` and resynchronises there (frames are 8-byte aligned and carry their seq and
    segment id). Only an invalid region with nothing valid after it is a ``torn_tail`` (with
    ``at_open``, for the active segment). Nothing on disk is changed here. ``chunk``: bytes read at a
    time (a reader that must stay small in memory, such as the bus catching up, passes less than 8 MiB).
    ``begin``: ``(offset, seq)`` of a frame boundary known to hold ``seq`` (a write's start), to walk from
    there instead of from the first record.
    """
    enc = seg.header.encoding
    window = seg.header.sync_window
    capacity = seg.header.capacity
    durable = acked = 0
    fd = os.open(seg.path, os.O_RDONLY)
    try:
        # A file cut short (a crash while it was created, or damage) ends where it ends.
        size = os.fstat(fd).st_size
        end = min(end, size)
        pos, seq = begin if begin is not None else (data_start(enc), seg.first_seq)
        buf_off = pos
        buf = os.pread(fd, max(0, min(chunk, end - pos)), pos)
        _read_ahead(fd, pos + len(buf), end, chunk)
        while True:
            records, count, p, status, mark, mark_acked = core.scan(buf, pos - buf_off, len(buf), seg.id, seq, enc,
                                                                    collect)
            durable, acked = max(durable, mark), max(acked, mark_acked)
            if count:
                yield seq, (records if collect else count)
                seq += count
            pos = buf_off + p
            if status == core.SCAN_MORE and buf_off + len(buf) < end:
                want = max(chunk, _frame_len_hint(buf, pos - buf_off, enc))
                grown = os.pread(fd, min(want, end - pos), pos)
                _read_ahead(fd, pos + len(grown), end, chunk)
                if pos == buf_off and len(grown) <= len(buf):
                    end = buf_off + len(buf)     # no progress possible: the bytes end here (never spin)
                else:
                    buf_off, buf = pos, grown
                continue
            if seg.last_seq is not None and seq > seg.last_seq:
                return WalkEnd(pos, seq, durable, acked)
            if not at_open and seg.last_seq is None and pos >= end:
                return WalkEnd(pos, seq, durable, acked)
            rest = os.pread(fd, max(0, min(capacity, size) - pos), pos)
            found, fseq = core.resync(rest, 0, len(rest), seg.id, seq, enc)
            if found < 0 or (seg.last_seq is None and not at_open and pos + found >= end):
                if seg.last_seq is not None:
                    on_damage(Damage("damaged_end", seg, pos, seq, seg.last_seq, len(rest)))
                    seq = seg.last_seq + 1
                elif at_open and found < 0 and status != core.SCAN_END:
                    on_damage(Damage("torn_tail", seg, pos, seq, seq - 1, min(len(rest), window)))
                return WalkEnd(pos, seq, durable, acked)
            on_damage(Damage("gap", seg, pos, seq, fseq - 1, found))
            pos += found
            seq = fseq
            if pos >= end:
                return WalkEnd(pos, seq, durable, acked)
            buf_off = pos
            buf = rest[found: found + min(chunk, end - pos)]
    finally:
        os.close(fd)


def drain(walker: Generator[Any, None, WalkEnd]) -> WalkEnd:
    """Run a segment walk to its end; returns where it stopped."""
    while True:
        try:
            next(walker)
        except StopIteration as stop:
            return stop.value


def recover_header(core: ModuleType, path: Path, segment_id: int, encodings: Iterable[int],
                   sync_window: int) -> SegmentHeader | None:
    """Rebuild the header of a segment whose own header is damaged, from its first valid frame.

    Every frame carries its seq and segment id, so the records of a segment do not depend on its
    header. Returns None if no valid frame of ``segment_id`` is in the file (a spare, or an empty or
    wholly unreadable segment).
    """
    with open(path, "rb") as f:
        data = f.read()
    st = os.stat(path)
    for enc in encodings:
        found, seq = core.resync(data, data_start(enc), len(data), segment_id, 1, enc)
        if found >= 0:
            return SegmentHeader(FORMAT_VERSION, enc, segment_id, seq, len(data), st.st_mtime_ns, sync_window)
    return None
