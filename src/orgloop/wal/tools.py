"""Offline tools on a WAL directory: verify, inspect, stats, export (read-only) and repair.

The read-only tools take no lock and change nothing, so they are safe next to a running writer (they
see the log as of the moment they read it). ``repair`` opens the log for writing, which runs the
normal recovery (torn tails erased, damage recorded and quarantined) and then reads every segment.
Every failure is a :class:`WalError` naming the file and what to do.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, TextIO, overload

import lmdb
import msgpack

from orgloop.errors import WalError, WalFormatError, WalNewerFormatError
from orgloop.wal import twins
from orgloop.wal.acks import AckState
from orgloop.wal.codec import json_record_error
from orgloop.wal.format import ENC_JSONL, ENC_MSGPACK, ENCODING_NAMES
from orgloop.wal.log import CHECKPOINT_DIR
from orgloop.wal.reader import Damage, drain, recover_header, walk_segment
from orgloop.wal.segments import SegmentInfo, link_segments, list_segments, read_header

__all__ = ["LogView", "VerifyReport", "open_view", "verify", "export", "repair", "read_checkpoint", "read_acks"]


@dataclass
class LogView:
    """The segments of a WAL directory as they are on disk, without opening the log for writing."""

    path: Path
    segments: list[SegmentInfo]
    spares: list[SegmentInfo]
    unreadable: list[tuple[Path, str]]

    @property
    def encoding(self) -> str | None:
        return ENCODING_NAMES[self.segments[0].header.encoding] if self.segments else None


@dataclass
class VerifyReport:
    """What :func:`verify` (or :func:`export`) found: damaged seq ranges and unreadable segment files."""

    segments: int = 0
    records: int = 0
    damage: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage and not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "segments": self.segments, "records": self.records, "damage": self.damage,
                "unreadable": self.unreadable}

    def note(self, d: Damage) -> None:
        self.damage.append(_damage_dict(d))

    def note_invalid_json(self, seg: SegmentInfo, seq: int, why: str) -> None:
        """A JSONL record that is not one UTF-8 JSON value (written before appends were checked)."""
        last = self.damage[-1] if self.damage else None
        if last and last["kind"] == "invalid_json" and last["segment"] == seg.path.name and last["last_seq"] == seq - 1:
            last["last_seq"] = seq
            return
        self.damage.append({"kind": "invalid_json", "segment": seg.path.name, "offset": None, "first_seq": seq,
                            "last_seq": seq, "bytes": 0, "error": why})


def open_view(path: str | Path) -> LogView:
    """List and parse the segment headers of ``path``; raises WalError if it is not a WAL directory."""
    root = Path(path)
    if not root.is_dir():
        raise WalError(f"{root} is not a directory")
    try:
        return _open_view(root)
    except OSError as exc:
        raise WalError(f"cannot read the WAL in {root}: {exc.strerror or exc}"
                       f"{f' ({exc.filename})' if exc.filename else ''}; check its permissions") from exc


def _open_view(root: Path) -> LogView:
    crc = twins.active.crc32c
    segments: list[SegmentInfo] = []
    spares: list[SegmentInfo] = []
    unreadable: list[tuple[Path, str]] = []
    found = list_segments(root)
    if not found and not (root / CHECKPOINT_DIR).exists():
        raise WalError(f"{root} does not look like an orgloop WAL directory (no *.wal segments)")
    damaged: list[tuple[int, Path, str]] = []
    for seg_id, seg_path in found:
        try:
            header = read_header(seg_path, crc)
        except WalNewerFormatError:
            raise
        except WalFormatError as exc:
            damaged.append((seg_id, seg_path, str(exc)))
            continue
        (segments if header.active else spares).append(SegmentInfo(seg_id, seg_path, header))
    encodings = sorted({s.header.encoding for s in segments + spares}) or [ENC_MSGPACK, ENC_JSONL]
    for seg_id, seg_path, why in damaged:     # a damaged header: the segment's frames still say what it holds
        rebuilt = recover_header(twins.active, seg_path, seg_id, encodings, 8 << 20)
        if rebuilt is None:
            unreadable.append((seg_path, why))
        else:
            segments.append(SegmentInfo(seg_id, seg_path, rebuilt, header_damage=why))
    segments.sort(key=lambda s: s.id)
    link_segments(segments)
    return LogView(root, segments, spares, unreadable)


def read_checkpoint(path: str | Path) -> AckState | None:
    """The persisted ack state, read without locking (None if there is none)."""
    cp = Path(path) / CHECKPOINT_DIR
    if not (cp / "data.mdb").is_file():
        return None
    try:
        env = lmdb.open(str(cp), readonly=True, lock=False, subdir=True, max_dbs=1)
        try:
            with env.begin() as txn:
                raw = txn.get(b"acks")
        finally:
            env.close()
        return AckState.from_bytes(raw) if raw is not None else None
    except (lmdb.Error, OSError, ValueError, TypeError, KeyError, msgpack.UnpackException) as exc:
        raise WalError(f"the WAL's ack store {cp} is unreadable ({exc}): `orgloop wal repair {path}` rebuilds it "
                       f"(every record still in the log then counts as unacknowledged and is delivered "
                       f"again)") from exc


def read_acks(view: LogView) -> AckState | None:
    """The ack state as the next open would find it, read without locking: the ack store's, with the
    watermark raised to what the active segment's durable marks carry (acks made in order while the log
    appends may be there only). None if neither holds any ack."""
    state = read_checkpoint(view.path)
    active = view.segments[-1] if view.segments and view.segments[-1].last_seq is None else None
    if active is None:
        return state
    try:
        marked = drain(walk_segment(twins.active, active, active.header.capacity, collect=False, at_open=False,
                                    on_damage=lambda d: None)).acked
    except OSError:                             # compacted by the running writer since it was listed
        return state
    if marked > (state.watermark if state is not None else 0):
        state = state if state is not None else AckState()
        state.raise_watermark(marked)
    return state


def _damage_dict(d: Damage) -> dict[str, Any]:
    return {"kind": d.kind, "segment": d.segment.path.name, "offset": d.offset, "first_seq": d.first_seq,
            "last_seq": d.last_seq, "bytes": d.extent}


@overload
def iter_segment(view: LogView, seg: SegmentInfo, *, collect: Literal[True],
                 on_damage: Callable[[Damage], None]) -> Iterator[tuple[int, list[bytes]]]: ...
@overload
def iter_segment(view: LogView, seg: SegmentInfo, *, collect: Literal[False],
                 on_damage: Callable[[Damage], None]) -> Iterator[tuple[int, int]]: ...


@overload
def iter_segment(view: LogView, seg: SegmentInfo, *, collect: bool,
                 on_damage: Callable[[Damage], None]) -> Iterator[tuple[int, Any]]: ...


def iter_segment(view: LogView, seg: SegmentInfo, *, collect: bool,
                 on_damage: Callable[[Damage], None]) -> Iterator[tuple[int, Any]]:
    """Runs of readable records in one segment, read-only (damage reported, nothing repaired): the
    records themselves with ``collect``, else how many."""
    walker = walk_segment(twins.active, seg, seg.header.capacity, collect=collect, at_open=seg.last_seq is None,
                          on_damage=on_damage)
    try:
        yield from walker
    except FileNotFoundError:
        return                                  # compacted by the running writer since it was listed
    except OSError as exc:
        raise WalError(f"cannot read WAL segment {seg.path}: {exc.strerror or exc}; check the disk") from exc


def verify(path: str | Path, progress: Callable[[SegmentInfo], None] | None = None) -> VerifyReport:
    """Read and checksum every record of every segment; report damage without changing anything."""
    view = open_view(path)
    report = VerifyReport(segments=len(view.segments))
    report.unreadable = [{"segment": p.name, "error": e} for p, e in view.unreadable]
    for seg in view.segments:
        jsonl = seg.header.encoding == ENC_JSONL
        for first, got in iter_segment(view, seg, collect=jsonl, on_damage=report.note):
            if jsonl:
                for seq, raw in enumerate(got, first):
                    why = json_record_error(raw)
                    if why:
                        report.note_invalid_json(seg, seq, why)
                report.records += len(got)
            else:
                report.records += got
        if progress:
            progress(seg)
    return report


def segment_summaries(view: LogView) -> list[dict[str, Any]]:
    """One row per segment: id, state, seq range, size, encoding, creation time."""
    rows = []
    for seg in view.segments:
        rows.append({"segment": seg.path.name, "state": "sealed" if seg.last_seq is not None else "active",
                     "first_seq": seg.first_seq, "last_seq": seg.last_seq, "capacity": seg.header.capacity,
                     "encoding": ENCODING_NAMES[seg.header.encoding], "created_ns": seg.header.created_ns,
                     "format_version": seg.header.version})
    rows += [{"segment": s.path.name, "state": "spare", "first_seq": None, "last_seq": None,
              "capacity": s.header.capacity, "encoding": ENCODING_NAMES[s.header.encoding], "created_ns": None,
              "format_version": s.header.version} for s in view.spares]
    rows += [{"segment": p.name, "state": "unreadable", "error": e} for p, e in view.unreadable]
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, msgpack.ExtType):
        return {"$ext": obj.code, "$base64": base64.b64encode(obj.data).decode()}
    raise TypeError(f"cannot export {type(obj).__name__} as JSON")


def _msgpack_to_json(raw: bytes) -> str:
    """A msgpack record as JSON; a record that is not one msgpack value is exported as ``{"$raw": base64}``."""
    try:
        value = msgpack.unpackb(raw)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return json.dumps({"$raw": base64.b64encode(raw).decode()})
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def export(path: str | Path, out: TextIO, *, from_seq: int = 1, unacked_only: bool = False,
           progress: Callable[[SegmentInfo], None] | None = None) -> tuple[int, VerifyReport]:
    """Write every readable record as one JSON line ``{"seq": n, "event": …}``.

    msgpack records are decoded (bytes become ``{"$base64": …}``); JSONL records are copied as they
    are, and one that is not a JSON value is exported as ``{"$raw": base64}``. Returns the count and a
    report of the damage met on the way (damaged seq ranges, unreadable segments).
    """
    view = open_view(path)
    acks = read_acks(view) if unacked_only else None
    report = VerifyReport(segments=len(view.segments))
    report.unreadable = [{"segment": p.name, "error": e} for p, e in view.unreadable]
    n = 0
    for seg in view.segments:
        jsonl = seg.header.encoding == ENC_JSONL
        for first, records in iter_segment(view, seg, collect=True, on_damage=report.note):
            report.records += len(records)
            for seq, raw in enumerate(records, first):
                if seq < from_seq or (acks is not None and acks.is_acked(seq)):
                    continue
                if jsonl:
                    why = json_record_error(raw)
                    if why:
                        report.note_invalid_json(seg, seq, why)
                        event = json.dumps({"$raw": base64.b64encode(raw).decode()})
                    else:
                        event = raw.decode()
                else:
                    event = _msgpack_to_json(raw)
                out.write('{"seq":%d,"event":%s}\n' % (seq, event))
                n += 1
        if progress:
            progress(seg)
    return n, report


def repair(path: str | Path, progress: Callable[[SegmentInfo], None] | None = None) -> dict[str, Any]:
    """Open the log for writing (running recovery), then scrub every segment so all damage is recorded."""
    from orgloop.wal.log import Wal

    with Wal(path) as wal:
        rec = wal.scrub(progress)
        return {"truncated_bytes": rec.truncated_bytes, "lost_records": rec.lost_records,
                "quarantined": rec.quarantined, "removed_files": rec.removed_files, "messages": rec.messages,
                "next_seq": wal.next_seq}
