"""Segment files: naming, headers, preparation of spares, recycling and quarantine.

A segment is preallocated at its full size; its blocks are written (zeros, or newlines for JSONL)
before appends reach them where possible, because overwriting written blocks is faster than appending
and makes fdatasync cheaper (no metadata update). Spares are prepared under a ``.tmp`` name and renamed into place with
an *inactive* header (``first_seq == 0``), so a crash at any point leaves either a usable spare or a
``.tmp`` file that the next open deletes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from orgloop.errors import WalFormatError
from orgloop.wal import fileio
from orgloop.wal.format import (ENC_JSONL, FORMAT_VERSION, JSONL_HEADER_SIZE, SegmentHeader, fill_byte, pack_header,
                                parse_header, parse_segment_name, segment_name)

__all__ = ["SegmentInfo", "list_segments", "read_header", "link_segments", "fsync_dir", "prepare_spare",
           "quarantine_bytes", "QUARANTINE_DIR", "RECYCLE_SUFFIX"]

QUARANTINE_DIR = "quarantine"
RECYCLE_SUFFIX = ".recycle"
_FILL_CHUNK = 1 << 20


@dataclass(slots=True)
class SegmentInfo:
    """One segment of the live log. ``last_seq`` is known once the segment is sealed.

    ``header_damage`` says why the header on disk could not be read (``header`` was then rebuilt from
    the segment's frames), or is None.
    """

    id: int
    path: Path
    header: SegmentHeader
    last_seq: int | None = None
    data_end: int | None = None     # where its frames end, once sealed by this process (else unknown)
    header_damage: str | None = None

    @property
    def first_seq(self) -> int:
        return self.header.first_seq


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """``(segment id, path)`` of every ``*.wal`` file, oldest first."""
    found = []
    for entry in os.scandir(directory):
        seg = parse_segment_name(entry.name)
        if seg is not None and entry.is_file():
            found.append((seg, Path(entry.path)))
    found.sort()
    return found


def read_header(path: Path, crc32c) -> SegmentHeader:
    with open(path, "rb") as f:
        raw = f.read(JSONL_HEADER_SIZE)
    header = parse_header(raw, crc32c, where=f"segment {path.name}")
    expected = parse_segment_name(path.name)
    if expected is not None and header.segment_id != expected:
        raise WalFormatError(f"segment {path.name}: header names segment {header.segment_id}, not {expected}")
    return header


def link_segments(infos: list[SegmentInfo]) -> None:
    """Set each segment's ``last_seq`` from its successor's header (the last segment stays active)."""
    for a, b in zip(infos, infos[1:]):
        a.last_seq = b.header.last_seq_before
    if infos:
        infos[-1].last_seq = None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fill(fd: int, start: int, end: int, byte: bytes) -> None:
    block = byte * _FILL_CHUNK
    pos = start
    while pos < end:
        n = fileio.pwrite(fd, block[: min(_FILL_CHUNK, end - pos)], pos)
        pos += n


def prepare_spare(directory: Path, segment_id: int, capacity: int, encoding: int, sync_window: int, crc32c,
                  recycled: Path | None = None) -> tuple[Path, bool]:
    """Create (or recycle) segment ``segment_id`` as an inactive spare; returns ``(path, fallocated)``.

    A recycled file (a compacted segment) is the fastest: its blocks are written already, so appends
    are pure overwrites. Its old records carry an older segment id, so no reader mistakes them for new
    ones. A recycled JSONL segment is overwritten with newlines first (one write of the segment, in the
    background, as a new JSONL segment costs too), so ``grep`` never shows a stale record. A new msgpack
    segment is ``fallocate``d (reads as zeros, blocks reserved): measured here, zero-filling it up front
    costs a second full write of the segment, which halves append throughput while a log grows; the
    pre-writer (:mod:`orgloop.wal.prewriter`) fills it while the log is quiet. A new JSONL segment is
    filled with newlines so the file stays plain text.
    """
    final = directory / segment_name(segment_id)
    tmp = directory / (segment_name(segment_id) + ".tmp")
    fallocated = False
    if recycled is not None and recycled.stat().st_size == capacity:
        os.replace(recycled, tmp)
        fd = os.open(tmp, os.O_RDWR)
        if encoding == ENC_JSONL:       # plain text: stale lines would show in grep, so blank them
            try:
                _fill(fd, JSONL_HEADER_SIZE, capacity, fill_byte(encoding))
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
    else:
        if recycled is not None:
            recycled.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if encoding == ENC_JSONL:
                _fill(fd, 0, capacity, fill_byte(encoding))
            else:
                os.posix_fallocate(fd, 0, capacity)
                fallocated = True
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
    try:
        header = SegmentHeader(FORMAT_VERSION, encoding, segment_id, 0, capacity, 0, sync_window)
        fileio.pwrite(fd, pack_header(header, crc32c), 0)
        fileio.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    fsync_dir(directory)
    return final, fallocated


def fill_range(path: Path, start: int, end: int, encoding: int) -> None:
    """Overwrite ``[start, end)`` with fill bytes and fdatasync (erases a torn tail)."""
    fd = os.open(path, os.O_RDWR)
    try:
        _fill(fd, start, end, fill_byte(encoding))
        fileio.fdatasync(fd)
    finally:
        os.close(fd)


QUARANTINE_MAX_COPY = 16 << 20


def quarantine_bytes(directory: Path, path: Path, offset: int, length: int, details: dict) -> Path | None:
    """Copy ``length`` damaged bytes of ``path`` at ``offset`` into ``quarantine/`` with a JSON sidecar.

    The segment itself stays in place, so the readable records around the damage keep being served.
    Each damaged range is copied once (the copy is named by segment and offset); returns the copy's
    path, or None if it was copied before. Copies are capped at 16 MiB (the sidecar says so).
    """
    qdir = directory / QUARANTINE_DIR
    qdir.mkdir(exist_ok=True)
    target = qdir / f"{path.name}.{offset:x}.bin"
    if target.exists():
        return None
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(length, QUARANTINE_MAX_COPY))
    details = {**details, "segment_file": path.name, "offset": offset, "length": length, "copied": len(data)}
    tmp = target.with_name(target.name + ".part")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    (qdir / (target.name + ".json")).write_text(json.dumps(details, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target)
    fsync_dir(qdir)
    return target
