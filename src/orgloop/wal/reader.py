"""Walking a segment's frames, shared by the log (replay, recovery) and the offline tools.

The walker never changes anything on disk: it reports damage through a callback and lets the caller
decide (the log erases torn tails and records losses; ``orgloop wal verify`` only reports).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Generator

from orgloop.wal.format import ENC_JSONL, data_start, frame_size
from orgloop.wal.segments import SegmentInfo

__all__ = ["Damage", "walk_segment", "READ_CHUNK"]

READ_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class Damage:
    """Something wrong found while walking a segment.

    ``kind`` is ``torn_tail`` (unsynced bytes at the end of the active segment after a crash: erase
    ``extent`` bytes at ``offset``; nothing there was ever acknowledged as durable), ``lost_range``
    (records ``first_seq..last_seq`` are unreadable, readable records follow) or ``damaged_end``
    (a sealed segment ends early: ``first_seq..last_seq`` are unreadable).
    """

    kind: str
    segment: SegmentInfo
    offset: int
    first_seq: int
    last_seq: int
    extent: int = 0


def _frame_len_hint(buf: bytes, p: int, enc: int) -> int:
    """Bytes the frame at ``buf[p:]`` needs, when its length field is in the buffer (else 0)."""
    try:
        if enc == ENC_JSONL:
            return frame_size(int(buf[p + 24:p + 34]), enc)
        return frame_size(int.from_bytes(buf[p + 4:p + 8], "little"), enc)
    except (ValueError, IndexError):
        return 0


def _torn_extent(core: ModuleType, rest: bytes, found: int, window: int, seg: SegmentInfo, seq: int) -> int:
    """Bytes to erase from the damage point: the sync window, and any frame reaching past it."""
    enc = seg.header.encoding
    extent = min(len(rest), window)
    p = found
    while 0 <= p < window:
        extent = max(extent, min(len(rest), p + _frame_len_hint(rest, p, enc)))
        p, _ = core.resync(rest, p + 8, len(rest), seg.id, seq, enc)
    return extent


def _read_ahead(fd: int, start: int, end: int, chunk: int = READ_CHUNK) -> None:
    """Ask the kernel to start reading the next chunk now, so the disk works while we checksum this one.

    On a cold log this overlaps I/O with the scan instead of adding them up.
    """
    if start < end:
        os.posix_fadvise(fd, start, min(chunk, end - start), os.POSIX_FADV_WILLNEED)


def walk_segment(core: ModuleType, seg: SegmentInfo, end: int, *, collect: bool, at_open: bool,
                 on_damage: Callable[[Damage], None],
                 chunk: int = READ_CHUNK) -> Generator[tuple[int, list | int], None, tuple[int, int]]:
    """Yield ``(first_seq, records or count)`` runs of valid frames in ``seg`` up to byte ``end``.

    ``seg.last_seq`` is None for the active segment (its end is found by scanning). With ``at_open``,
    damage within the active segment's last ``sync_window`` bytes, with nothing readable after that
    window, is a torn tail. A bad frame followed by readable frames is a lost range: reported, then
    skipped. Returns ``(tail_offset, next_seq)``. ``chunk``: bytes read at a time (a reader that must
    stay small in memory, such as the bus catching up, passes less than the default 8 MiB).
    """
    enc = seg.header.encoding
    window = seg.header.sync_window
    capacity = seg.header.capacity
    fd = os.open(seg.path, os.O_RDONLY)
    try:
        # A file cut short (a crash while it was created, or damage) ends where it ends.
        end = min(end, os.fstat(fd).st_size)
        pos = data_start(enc)
        seq = seg.first_seq
        buf_off = pos
        buf = os.pread(fd, max(0, min(chunk, end - pos)), pos)
        _read_ahead(fd, pos + len(buf), end, chunk)
        while True:
            records, count, p, status = core.scan(buf, pos - buf_off, len(buf), seg.id, seq, enc, collect)
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
                return pos, seq
            if not at_open and seg.last_seq is None and pos >= end:
                return pos, seq
            rest = os.pread(fd, max(0, capacity - pos), pos)
            found, fseq = core.resync(rest, 0, len(rest), seg.id, seq, enc)
            torn = at_open and seg.last_seq is None and (
                found < 0 or (found < window and core.resync(rest, window, len(rest), seg.id, seq, enc)[0] < 0))
            if found < 0 or torn:
                if torn and (status != core.SCAN_END or found >= 0):
                    on_damage(Damage("torn_tail", seg, pos, seq, seq, _torn_extent(core, rest, found, window, seg, seq)))
                elif seg.last_seq is not None:
                    on_damage(Damage("damaged_end", seg, pos, seq, seg.last_seq))
                    seq = seg.last_seq + 1
                return pos, seq
            on_damage(Damage("lost_range", seg, pos, seq, fseq - 1))
            pos += found
            seq = fseq
            if pos >= end:
                return pos, seq
            buf_off = pos
            buf = rest[found: found + min(chunk, end - pos)]
    finally:
        os.close(fd)
