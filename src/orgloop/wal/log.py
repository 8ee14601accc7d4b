"""The write-ahead log: appends with group commit, segments, acks, replay, compaction and recovery.

Durability is explicit (``sync``):

* ``always`` (default): ``append*`` returns only after the records are fdatasynced. Appenders on
  many threads share one fdatasync (group commit, no artificial delay).
* ``interval``: records are written to the OS before ``append*`` returns (they survive a process
  crash) and fdatasynced at most ``sync_interval_ms`` later (a power loss can lose that window).
* ``none``: written to the OS before return, fdatasynced only when a segment is sealed or on
  ``sync()``/``close()``.
"""
from __future__ import annotations

import bisect
import fcntl
from collections import Counter
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import lmdb
import msgpack

from orgloop.errors import (WalClosedError, WalCorruptionError, WalError, WalFormatError, WalFullError,
                            WalNewerFormatError, WalRecordTooLargeError)
from orgloop.wal import fileio, seqhwm
from orgloop.wal import segments as seglib
from orgloop.wal.acks import DEFAULT_FLUSH_BATCH, DEFAULT_FLUSH_INTERVAL, AckState, AckStore, AckStoreDamaged
from orgloop.wal.codec import decode_json_many, encode_json_many, json_record_error
from orgloop.wal.format import (ENC_MSGPACK, ENCODING_NAMES, ENCODINGS, ENC_JSONL, FORMAT_VERSION, SegmentHeader,
                                data_start, fill_byte, frame_size, mark_size, pack_header, parse_segment_name,
                                segment_name)
from orgloop.wal.prewriter import Prewriter, Target
from orgloop.wal.reader import READ_CHUNK, Damage, WalkEnd, drain, recover_header, walk_segment
from orgloop.wal.segments import QUARANTINE_DIR, RECYCLE_SUFFIX, SegmentInfo

__all__ = ["Wal", "ReplayBatch", "RecoveryReport", "SYNC_POLICIES", "FULL_POLICIES"]

log = logging.getLogger("orgloop.wal")

SYNC_POLICIES = ("always", "interval", "none")
FULL_POLICIES = ("error", "drop_oldest")
DEFAULT_SEGMENT_SIZE = 64 << 20
DEFAULT_SYNC_WINDOW = 8 << 20
MIN_SEGMENT_SIZE = 16 << 10
MAX_RECYCLE_POOL = 2
POSITION_STRIDE = 64 << 10     # bytes between remembered (seq, offset) positions of a segment
CHECKPOINT_DIR = "checkpoint"


FAULT_ENV = "ORGLOOP_WAL_FAULT"
FAULT_POINTS = ("after_write", "after_checkpoint", "after_seal", "after_prepare")


def _parse_faults() -> dict[str, int]:
    """``ORGLOOP_WAL_FAULT=point:hits[,point:hits]``: crash-test hooks (SIGKILL at the n-th hit)."""
    spec = os.environ.get(FAULT_ENV, "")
    faults: dict[str, int] = {}
    for item in filter(None, spec.split(",")):
        point, _, hits = item.partition(":")
        if point not in FAULT_POINTS or not hits.isdigit():
            raise ValueError(f"{FAULT_ENV}: expected point:hits with point one of {', '.join(FAULT_POINTS)}, "
                             f"got {item!r}")
        faults[point] = int(hits)
    return faults


class ReplayBatch(NamedTuple):
    """Records read back from the log, with their sequence numbers (``seqs[i]`` goes with ``records[i]``)."""

    seqs: Sequence[int]
    records: list[Any]


@dataclass
class RecoveryReport:
    """What opening the log found and did (and what reading it found since).

    ``lost_records``: unacked records in the region known to be durable that are unreadable (media
    damage; never expected). ``torn_records``: unacked records after the last durable point that are
    unreadable (an interrupted write; never acknowledged). ``skipped_seqs``: sequence numbers passed over
    so that none is ever issued twice after an unclean shutdown. ``acked_by_marks``: seqs the ack store
    did not hold as acked but the durable marks of the active segment did (acks made in order ride on
    the marks, see ``docs/wal-format.md``).
    """

    segments: int = 0
    next_seq: int = 1
    truncated_bytes: int = 0
    lost_records: int = 0
    torn_records: int = 0
    skipped_seqs: int = 0
    quarantined: list[str] = field(default_factory=list)
    removed_files: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    acks_rebuilt: bool = False
    acked_by_marks: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not (self.truncated_bytes or self.lost_records or self.torn_records or self.quarantined
                    or self.acks_rebuilt)


@dataclass
class _Plan:
    """What recovery found, before anything on disk is changed (strict mode refuses at this point)."""

    tmp_files: list[Path] = field(default_factory=list)
    damaged_spares: list[tuple[Path, str]] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    compacted: list[SegmentInfo] = field(default_factory=list)
    damage: list[tuple[Damage, bool]] = field(default_factory=list)    # (damage, in the durable region)
    missing: tuple[int, int] | None = None                             # seqs before the first segment, gone
    tail: WalkEnd | None = None
    hwm: tuple[int, bool] | None = None                                # see orgloop.wal.seqhwm
    cut: tuple[int, int] | None = None    # seqs below a clean close's next seq that the active segment lacks

    def lost(self, acks: AckState) -> list[tuple[int, int, int]]:
        """``(first_seq, last_seq, unacked)`` of every durable range found unreadable."""
        ranges = [(d.first_seq, d.last_seq) for d, durable in self.damage if durable and d.kind != "torn_tail"]
        ranges += [r for r in (self.missing, self.cut) if r]
        return [(lo, hi, acks.unacked_in(lo, hi)) for lo, hi in ranges if hi >= lo and acks.unacked_in(lo, hi)]


def _twins():
    from orgloop.wal import twins

    return twins


class Wal:
    """A durable, append-only log of byte records (or events) with sequence numbers and acks.

    >>> import tempfile
    >>> with Wal(tempfile.mkdtemp(), segment_size=1 << 20) as wal:
    ...     wal.append_many([b"a", b"b"])
    ...     wal.ack(1)
    ...     [list(b.seqs) for b in wal.replay()]
    range(1, 3)
    [[2]]
    """

    def __init__(self, path: str | os.PathLike[str], *, encoding: str | None = None, sync: str = "always",
                 sync_interval_ms: float = 10.0, segment_size: int = DEFAULT_SEGMENT_SIZE,
                 max_segment_age: float | None = None, max_bytes: int | None = None,
                 full_policy: str = "error", sync_window: int = DEFAULT_SYNC_WINDOW,
                 ack_flush_interval: float = DEFAULT_FLUSH_INTERVAL, ack_flush_batch: int = DEFAULT_FLUSH_BATCH,
                 implementation: str | None = None, strict: bool = False) -> None:
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_POLICIES)}, not {sync!r}")
        if full_policy not in FULL_POLICIES:
            raise ValueError(f"full_policy must be one of {', '.join(FULL_POLICIES)}, not {full_policy!r}")
        if encoding is not None and encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}")
        if segment_size < MIN_SEGMENT_SIZE or segment_size % 8:
            raise ValueError(f"segment_size must be a multiple of 8 and at least {MIN_SEGMENT_SIZE} bytes")
        if max_bytes is not None and max_bytes < 2 * segment_size:
            raise ValueError("max_bytes must allow at least two segments (2 * segment_size)")
        if sync_interval_ms <= 0:
            raise ValueError("sync_interval_ms must be positive")
        self.path = Path(path)
        self.sync = sync
        self.sync_interval_ms = sync_interval_ms
        self.segment_size = segment_size
        self.max_segment_age = max_segment_age
        self.max_bytes = max_bytes
        self.full_policy = full_policy
        self.strict = strict
        self._core = _twins().get(implementation)
        self.implementation = "compiled" if self._core is _twins().compiled else "pure"
        self._crc = self._core.crc32c
        self._lock = threading.RLock()
        self._closed = False
        self._follow_cv = threading.Condition()
        self._pins: Counter[int] = Counter()       # segment id -> readers holding it (see replay)
        # segment id -> (first seq, offset) of a write every POSITION_STRIDE bytes: a reader that starts
        # at a seq deep inside a segment starts scanning near it, not at the segment's first record
        self._positions: dict[int, list[tuple[int, int]]] = {}
        self._indexed_upto = 0
        self._followers = 0
        self._preparer: threading.Thread | None = None
        self._spare_fallocated = False
        self._active_fallocated = False            # the active segment's blocks past the offset may be unwritten
        self._prewriter: Prewriter | None = None
        self._prepare_error: BaseException | None = None
        self._faults = _parse_faults()
        self.counters = {"appended": 0, "appended_bytes": 0, "rotations": 0, "compacted_segments": 0,
                         "dropped_records": 0}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WalError(f"cannot create WAL directory {self.path}: {exc.strerror or exc}") from exc
        self._lockfile = self._take_lock()
        self._acks_store: AckStore | None = None
        self._ack_flush = (ack_flush_interval, ack_flush_batch)
        self._jump_from: int | None = None
        try:
            try:
                self.recovery = self._open(encoding, sync_window)
            except OSError as exc:
                raise WalError(f"cannot open the WAL in {self.path}: {exc.strerror or exc}"
                               f"{f' ({exc.filename})' if exc.filename else ''}; check the directory's "
                               f"permissions and free space") from exc
            except BaseException:
                if hasattr(self, "_fd"):
                    os.close(self._fd)
                raise
        except BaseException:
            if self._acks_store is not None:
                self._acks_store.close(None)
            self._release_lock()
            raise
        self._committer = self._core.Committer()
        self._committer.reset(self._next_seq - 1, self._fd, self._offset)
        if "after_write" in self._faults:
            self._committer.set_fault("after_write", self._faults["after_write"])
        self._prewriter = Prewriter(self._lock, self._prewrite_targets, fill_byte(self._enc))
        self._settle_active()
        if sync == "interval":
            self._committer.start_syncer(sync_interval_ms / 1000.0)
        self._start_preparer()
        self._prewriter.start()
        committer = self._committer
        self._store().start(self.acks, marked=lambda: committer.synced_acked)

    def _fault(self, point: str) -> None:
        """Crash-test hook: SIGKILL ourselves at the configured hit of ``point`` (no-op normally)."""
        left = self._faults.get(point)
        if left is not None:
            self._faults[point] = left - 1
            if left == 1:
                os.write(2, b"ORGLOOP-WAL-FAULT %s\n" % point.encode())    # the crash tests check it was reached
                os.kill(os.getpid(), signal.SIGKILL)

    # ------------------------------------------------------------------ opening and recovery
    def _take_lock(self) -> int:
        try:
            fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise WalError(f"cannot open WAL directory {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WalError(f"WAL directory {self.path} is in use by another process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release_lock(self) -> None:
        os.close(self._lockfile)

    def _open(self, encoding: str | None, sync_window: int) -> RecoveryReport:
        """Recover the log: first find everything (nothing on disk changes), then repair.

        With ``strict``, a durable record found unreadable stops the open before anything is changed.
        """
        t0 = time.perf_counter()
        report = RecoveryReport()
        self._report = report
        plan = _Plan()
        for name in (CHECKPOINT_DIR, QUARANTINE_DIR):
            if os.path.lexists(self.path / name) and not (self.path / name).is_dir():
                raise WalError(f"{self.path / name} is not a directory, but the WAL keeps its "
                               f"{'acknowledgements' if name == CHECKPOINT_DIR else 'damaged copies'} in a directory "
                               f"of that name: move that file out of {self.path} and open the log again")
        plan.tmp_files = [Path(e.path) for e in os.scandir(self.path)
                          if e.name.endswith(".tmp") and e.is_file(follow_symlinks=False)]   # spares cut short
        self._recycle_pool = sorted(Path(e.path) for e in os.scandir(self.path)
                                    if e.name.endswith(RECYCLE_SUFFIX) and e.is_file(follow_symlinks=False))
        state, acks_trusted = self._load_acks(report)
        self.acks = state
        # A rebuilt ack store lost the high-water mark kept beside it: assume the worst (skip a block).
        plan.hwm = (-1, False) if report.acks_rebuilt else seqhwm.load(self._store().env)
        infos = self._read_headers(plan, encoding, sync_window)
        seglib.link_segments(infos)
        while len(infos) > 1 and infos[0].last_seq is not None and infos[0].last_seq <= state.watermark:
            plan.compacted.append(infos.pop(0))     # an interrupted compaction: finish it
        if not acks_trusted and infos and infos[0].header.last_seq_before > 0:
            state.ack_range(1, infos[0].header.last_seq_before)    # those records are gone: nothing to deliver
        if infos and infos[0].header.last_seq_before > state.watermark:
            plan.missing = (state.watermark + 1, infos[0].header.last_seq_before)
        if infos:
            self._scan_at_open(plan, infos)
            self._take_marked_acks(plan, state, report)
        if self.strict and (lost := plan.lost(state)):
            ranges = ", ".join(f"{lo}..{hi}" for lo, hi, _n in lost)
            raise WalCorruptionError(
                f"WAL {self.path}: {sum(n for *_r, n in lost)} durable unacknowledged records are unreadable "
                f"(seqs {ranges}); strict mode refuses to open it and changed nothing. Open it without strict "
                f"(or run `orgloop wal repair`) to keep every readable record and count the rest as lost")
        self._apply(plan, infos, report)
        self._segments = infos
        next_seq = self._next_seq_after(plan)
        if infos:
            active = infos[-1]
            self.segment_size = active.header.capacity
            assert plan.tail is not None
            self._offset = plan.tail.offset
            self._next_seq = plan.tail.next_seq
            self._fd = os.open(active.path, os.O_RDWR)
            fileio.fdatasync(self._fd)       # what recovery found is durable from here on (durable marks rely on it)
            age = max(0.0, (time.time_ns() - active.header.created_ns) / 1e9)
            self._active_since = time.monotonic() - age
            self._unsynced = 0
            self._jump(next_seq)
        else:
            self._next_seq = state.highest + 1
            self._jump(next_seq)
            self._activate_new_segment()
            if self._active_fallocated:       # a new log: nothing competes yet, so its first appends find
                seglib.fill_range(self._segments[-1].path, self._data_start, self.segment_size, self._enc)
                self._active_fallocated = False   # written blocks (later segments: the pre-writer's job)
        self._opened_offset = self._offset
        try:
            seqhwm.store(self._store().env, self._next_seq + seqhwm.BLOCK)
            self._seq_reserved = self._next_seq + seqhwm.BLOCK
        except WalError as exc:     # readable anyway; the first append retries (and fails clearly until then)
            self._seq_reserved = self._next_seq
            report.messages.append(str(exc))
        if report.lost_records or report.torn_records or report.quarantined or report.skipped_seqs or not acks_trusted:
            try:
                self._store().flush(state, durable=True)
            except (WalError, lmdb.Error) as exc:    # e.g. a full disk: the next open finds the same again
                report.messages.append(f"cannot record what recovery found in {CHECKPOINT_DIR}/: {exc}")
        report.segments = len(self._segments)
        report.next_seq = self._next_seq
        report.seconds = time.perf_counter() - t0
        for msg in report.messages:
            log.warning("%s: %s", self.path, msg)
        return report

    def _read_headers(self, plan: _Plan, encoding: str | None, sync_window: int) -> list[SegmentInfo]:
        """Parse every segment header; rebuild damaged ones from their frames. Sets the log's encoding."""
        infos: list[SegmentInfo] = []
        spares: list[SegmentInfo] = []
        damaged: list[tuple[int, Path, str]] = []
        max_id = max((parse_segment_name(p.name[: -len(RECYCLE_SUFFIX)]) or 0 for p in self._recycle_pool),
                     default=0)
        for seg_id, path in seglib.list_segments(self.path):
            max_id = max(max_id, seg_id)
            try:
                header = seglib.read_header(path, self._crc)
            except WalNewerFormatError:
                raise
            except WalFormatError as exc:
                damaged.append((seg_id, path, str(exc)))
                continue
            (infos if header.active else spares).append(SegmentInfo(seg_id, path, header))
        known = {i.header.encoding for i in infos + spares}
        if len(known) == 1:
            candidates = list(known)
        elif encoding is not None:
            candidates = [ENCODINGS[encoding]]
        else:
            candidates = [ENC_MSGPACK, ENC_JSONL]
        empty = []
        for seg_id, path, why in damaged:
            rebuilt = recover_header(self._core, path, seg_id, candidates, DEFAULT_SYNC_WINDOW)
            if rebuilt is not None:
                infos.append(SegmentInfo(seg_id, path, rebuilt, header_damage=why))
            else:
                empty.append((seg_id, path, why))
        last_active = max((i.id for i in infos), default=0)
        for seg_id, path, why in empty:     # no frame of its own: a spare if newer than every segment in use
            (plan.damaged_spares if seg_id > last_active else plan.unreadable).append((path, why))
        infos.sort(key=lambda i: i.id)
        on_disk = {i.header.encoding for i in infos}
        if len(on_disk) > 1:
            raise WalFormatError(f"{self.path}: segments use different encodings; refusing to mix them")
        if on_disk:
            enc = on_disk.pop()
            if encoding is not None and ENCODINGS[encoding] != enc:
                raise WalError(f"{self.path} holds a {ENCODING_NAMES[enc]} log; it cannot be opened as {encoding}")
        else:
            enc = ENCODINGS[encoding or "msgpack"]
        self.encoding = ENCODING_NAMES[enc]
        self._enc = enc
        self._data_start = data_start(enc)
        self._mark_size = mark_size(enc)
        self.sync_window = max(4096, min(sync_window, self.segment_size - self._data_start))
        for s in spares:
            if infos and s.id < infos[-1].id:
                plan.tmp_files.append(s.path)        # a spare left behind by a rotation: no longer needed
        self._spare = next((s.path for s in spares if not infos or s.id > infos[-1].id), None)
        self._next_segment_id = max_id + 1
        return infos

    def _scan_at_open(self, plan: _Plan, infos: list[SegmentInfo]) -> None:
        """Walk the active segment (and, in strict mode or after header damage, every sealed one),
        collecting damage; decide for each unreadable range whether it was durable."""
        active = infos[-1]
        found: list[Damage] = []
        walker = walk_segment(self._core, active, active.header.capacity, collect=False, at_open=True,
                              on_damage=found.append)
        tail = drain(walker)
        plan.tail = tail
        durable = tail.durable
        if plan.hwm is not None and plan.hwm[1] and tail.next_seq < plan.hwm[0]:
            plan.cut = (tail.next_seq, plan.hwm[0] - 1)    # closed cleanly, so these were durable: the end is cut
        if active.header.version < 2:
            durable = max(durable, tail.offset - active.header.sync_window)   # format 1: the sync-window rule
        plan.damage += [(d, d.kind == "gap" and d.offset < durable) for d in found]
        if self.strict or plan.unreadable or any(i.header_damage for i in infos[:-1]):
            for seg in infos[:-1]:
                sealed: list[Damage] = []
                drain(walk_segment(self._core, seg, seg.header.capacity, collect=False, at_open=False,
                                    on_damage=sealed.append))
                plan.damage += [(d, True) for d in sealed]      # a sealed segment was fdatasynced whole

    @staticmethod
    def _take_marked_acks(plan: _Plan, state: AckState, report: RecoveryReport) -> None:
        """Ack what the active segment's durable marks say was acked (a mark's watermark was true when it
        was written, so any readable mark may be trusted, durable or not); the ack store may be older."""
        assert plan.tail is not None
        report.acked_by_marks = state.raise_watermark(plan.tail.acked)

    def _apply(self, plan: _Plan, infos: list[SegmentInfo], report: RecoveryReport) -> None:
        """Carry out what :meth:`_scan_at_open` decided."""
        for path in plan.tmp_files:
            path.unlink(missing_ok=True)
            report.removed_files.append(path.name)
        for path, why in plan.damaged_spares:
            self._quarantine_header(path, why, "a prepared spare; it is prepared again")
            if path.stat().st_size == self.segment_size and len(self._recycle_pool) < MAX_RECYCLE_POOL:
                target = path.with_name(path.name + RECYCLE_SUFFIX)
                os.replace(path, target)
                self._recycle_pool.append(target)
            else:
                path.unlink()
            if self._spare == path:
                self._spare = None
        for path, why in plan.unreadable:
            self._quarantine_file(path, why, report)
        for seg in infos:
            if seg.header_damage:
                self._quarantine_header(seg.path, seg.header_damage,
                                        f"its records were recovered from their frames (first seq {seg.first_seq})")
        for seg in plan.compacted:
            seg.path.unlink(missing_ok=True)
            report.removed_files.append(seg.path.name)
        if plan.missing:
            lo, hi = plan.missing
            self._record_range(None, lo, hi, durable=True, reason="segments before the oldest one kept are gone")
        if plan.cut:
            lo, hi = plan.cut
            self._record_range(None, lo, hi, durable=True,
                               reason=f"the end of the active segment {infos[-1].path.name} is gone after a clean close")
        for d, durable in plan.damage:
            self._on_damage(d, durable=durable)
        if plan.unreadable or plan.compacted or plan.damaged_spares:
            seglib.fsync_dir(self.path)

    def _next_seq_after(self, plan: _Plan) -> int:
        """The first seq this session may issue: above every seq ever issued (see :mod:`orgloop.wal.seqhwm`)."""
        recovered = plan.tail.next_seq if plan.tail is not None else 1
        nxt = max(recovered, self.acks.highest + 1)
        if plan.hwm is not None:
            reserved, _clean = plan.hwm
            nxt = max(nxt, reserved if reserved >= 0 else recovered + seqhwm.BLOCK)
        return nxt

    def _jump(self, next_seq: int) -> None:
        """Continue at ``next_seq``: the seqs skipped are acked (nothing will ever carry them) and the
        jump is recorded in the next segment header (``prev_last_seq``), see :meth:`_settle_active`."""
        if next_seq <= self._next_seq:
            return
        skipped = next_seq - self._next_seq
        self.acks.ack_range(self._next_seq, next_seq - 1)
        self._report.skipped_seqs += skipped
        self._report.messages.append(
            f"continuing at seq {next_seq}, above every seq the log may have issued: {skipped} seqs from "
            f"{self._next_seq} on are skipped, so that none is ever issued twice")
        self._jump_from = self._next_seq
        self._next_seq = next_seq

    def _settle_active(self) -> None:
        """Append only into a healthy segment of the current format that knows the current seq.

        A segment of format 1, one whose header was damaged, or one that precedes a seq jump is sealed
        (or, if it holds no records, given a fresh header) so that every segment stays self-describing.
        """
        active = self._segments[-1]
        if not (active.header.version < FORMAT_VERSION or active.header_damage or self._jump_from is not None):
            return
        if self._offset > self._data_start:
            try:
                self._rotate()
                return
            except WalError as exc:
                log.warning("%s: could not start a new segment after recovery (%s); appending to %s", self.path,
                            exc, active.path.name)
                return
        header = SegmentHeader(FORMAT_VERSION, self._enc, active.id, self._next_seq, active.header.capacity,
                               active.header.created_ns, self.sync_window, active.header.last_seq_before)
        fileio.pwrite(self._fd, pack_header(header, self._crc), 0)
        fileio.fdatasync(self._fd)
        active.header = header
        active.header_damage = None
        self._jump_from = None

    def _quarantine_header(self, path: Path, why: str, what: str) -> None:
        copy = seglib.quarantine_bytes(self.path, path, 0, self._data_start, {"reason": why, "kind": "header"})
        if copy is not None:
            self._report.quarantined.append(copy.name)
            self._report.messages.append(f"damaged header of {path.name} ({why}): {what}; the header bytes are in "
                                         f"{QUARANTINE_DIR}/{copy.name}")

    def _load_acks(self, report: RecoveryReport) -> tuple[AckState, bool]:
        """Open the ack store and load its state; returns ``(state, trusted)``.

        A damaged store is moved to ``quarantine/`` and rebuilt conservatively: every record still in
        the log counts as unacknowledged, so events are delivered again, never lost.
        """
        cp = self.path / CHECKPOINT_DIR
        interval, batch = self._ack_flush
        try:
            self._acks_store = AckStore(cp, flush_interval=interval, flush_batch=batch)
            state = self._acks_store.load()
            return (state, True) if state is not None else (AckState(), False)
        except AckStoreDamaged as exc:
            if self._acks_store is not None:
                self._acks_store.close(None)
                self._acks_store = None
            qdir = self.path / QUARANTINE_DIR
            qdir.mkdir(exist_ok=True)
            target = qdir / f"{CHECKPOINT_DIR}-{time.time_ns()}"
            os.replace(cp, target)
            seglib.fsync_dir(self.path)
            msg = (f"{exc}; moved it to {QUARANTINE_DIR}/{target.name} and started a new one: every record still "
                   f"in the log counts as unacknowledged and will be delivered again")
            report.messages.append(msg)
            report.acks_rebuilt = True
            self._acks_store = AckStore(cp, flush_interval=interval, flush_batch=batch)
            return AckState(), False

    def _quarantine_file(self, path: Path, reason: str, report: RecoveryReport) -> None:
        qdir = self.path / QUARANTINE_DIR
        qdir.mkdir(exist_ok=True)
        os.replace(path, qdir / path.name)
        (qdir / (path.name + ".json")).write_text(f'{{"reason": {reason!r:}}}\n'.replace("'", '"'))
        report.quarantined.append(path.name)
        report.messages.append(f"moved unreadable segment {path.name} to {QUARANTINE_DIR}/: {reason} "
                               f"(no record of it could be read)")

    # ------------------------------------------------------------------ reading segments
    def _walk(self, seg: SegmentInfo, end: int, *, collect: bool, chunk: int = READ_CHUNK,
              begin: tuple[int, int] | None = None):
        """Runs of valid frames of ``seg`` (see :func:`orgloop.wal.reader.walk_segment`), recording damage."""
        return walk_segment(self._core, seg, end, collect=collect, at_open=False, on_damage=self._on_damage,
                            chunk=chunk, begin=begin)

    def _on_damage(self, d: Damage, durable: bool = True) -> None:
        """Record damage found by a walk. After open every byte before the append offset is durable."""
        if d.kind == "torn_tail":
            if not d.extent:
                return
            seglib.fill_range(d.segment.path, d.offset, d.offset + d.extent, d.segment.header.encoding)
            self._report.truncated_bytes += d.extent
            self._report.messages.append(
                f"erased a torn tail of {d.extent} bytes at offset {d.offset} of {d.segment.path.name} "
                f"(an interrupted write: nothing valid follows it, nothing there was acknowledged)")
            return
        reason = "unreadable frames" if d.kind == "gap" else "a damaged end of a sealed segment"
        self._record_range(d, d.first_seq, d.last_seq, durable=durable, reason=reason)

    def _record_range(self, d: Damage | None, lo: int, hi: int, *, durable: bool, reason: str) -> None:
        """Records ``lo..hi`` cannot be read: count the unacked ones (lost if durable, else torn), ack
        them so they are never expected again, and copy the damaged bytes to ``quarantine/`` once."""
        state = self.acks
        report = self._report
        n = state.unacked_in(lo, hi) if hi >= lo else 0
        if n and durable and self.strict and hasattr(self, "_committer"):
            raise WalCorruptionError(f"WAL {self.path}: records {lo}..{hi} are unreadable ({reason}"
                                     f"{f' in {d.segment.path.name} at offset {d.offset}' if d else ''}); "
                                     f"strict mode stops here")
        if hi >= lo:
            state.ack_range(lo, hi)
        copy = None
        if d is not None and d.extent:
            copy = seglib.quarantine_bytes(self.path, d.segment.path, d.offset, d.extent, {
                "reason": reason, "segment": d.segment.id, "seqs": [lo, hi], "unacked": n,
                "durable": durable})
            if copy is not None:
                state.quarantined.add(d.segment.id)
                report.quarantined.append(copy.name)
        if durable:
            state.lost += n
            report.lost_records += n
        else:
            report.torn_records += n
        if n or copy:
            where = f" in {d.segment.path.name} at offset {d.offset}" if d else ""
            what = ("lost (they were durable: media damage)" if durable
                    else "torn (written after the last durable point: never acknowledged)")
            records = f"records {lo}..{hi} are unreadable, {n} of them unacknowledged and {what}" if hi >= lo \
                else "no record was there (a durable mark)"
            msg = (f"{reason}{where}: {records}"
                   f"{f'; a copy of the bytes is in {QUARANTINE_DIR}/{copy.name}' if copy else ''}")
            report.messages.append(msg)
            if hasattr(self, "_committer"):
                log.error("%s: %s", self.path, msg)
                self._store().flush(state, durable=True)

    # ------------------------------------------------------------------ segments
    def _activate_new_segment(self) -> None:
        """Make the next segment active (the prepared spare if there is one)."""
        self._activate(*self._take_spare(self._next_segment_id))

    def _activate(self, path: Path, fallocated: bool) -> None:
        """Write the active header into the spare at ``path`` and append there from now on.

        ``fallocated``: its blocks may be unwritten (the pre-writer fills them ahead of the appender).
        """
        seg_id = self._next_segment_id
        prev_last = (self._jump_from if self._jump_from is not None else self._next_seq) - 1
        header = SegmentHeader(FORMAT_VERSION, self._enc, seg_id, self._next_seq, self.segment_size,
                               time.time_ns(), self.sync_window, prev_last)
        fd = os.open(path, os.O_RDWR)
        try:
            # Durable before any record goes there: a segment that stays empty (a rotation just before
            # close or a crash) must still read as the active segment it is, not as a spare.
            fileio.pwrite(fd, pack_header(header, self._crc), 0)
            fileio.fdatasync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._offset = self._data_start
        self._active_fallocated = fallocated
        self._indexed_upto = 0
        self._active_since = time.monotonic()
        self._unsynced = 0
        self._jump_from = None
        self._segments.append(SegmentInfo(seg_id, path, header))
        self._next_segment_id = seg_id + 1
        if hasattr(self, "_committer"):     # durable marks in this file start from its first record
            self._committer.reset(self._next_seq - 1, fd, self._data_start)
        if self._prewriter is not None:
            self._prewriter.poke()

    def _take_spare(self, seg_id: int) -> tuple[Path, bool]:
        """The spare to activate as segment ``seg_id`` (prepared now if there is none), and whether its
        blocks may be unwritten. Caller holds the lock."""
        if self._preparer is not None:
            self._preparer.join()
            self._preparer = None
        if self._prewriter is not None:
            self._prewriter.wait_idle()      # no fill in flight into the spare (or the segment being sealed)
        if self._spare is not None and self._spare.name == segment_name(seg_id):
            path, self._spare = self._spare, None
            return path, self._spare_fallocated
        if self._spare is not None:
            self._spare.unlink(missing_ok=True)
            self._spare = None
        return self._prepare(seg_id), self._spare_fallocated

    def _prewrite_targets(self) -> list[Target]:
        """What the pre-writer may fill (it holds the lock): the active segment past the append offset,
        then the spare, if their blocks may be unwritten."""
        if self._closed:
            return []
        targets = []
        if self._active_fallocated:
            targets.append(Target(self._segments[-1].path, self._offset, self.segment_size))
        spare = self._spare
        if spare is not None and self._spare_fallocated:
            targets.append(Target(spare, self._data_start, self.segment_size))
        return targets

    def _prepare(self, seg_id: int) -> Path:
        recycled = self._recycle_pool.pop(0) if self._recycle_pool else None
        path, self._spare_fallocated = seglib.prepare_spare(self.path, seg_id, self.segment_size, self._enc,
                                                            self.sync_window, self._crc, recycled)
        self._fault("after_prepare")
        return path

    def _start_preparer(self) -> None:
        """Prepare the next segment in the background, off the append path."""
        seg_id = self._next_segment_id
        if self._spare is not None or self._closed or (self._preparer is not None and self._preparer.is_alive()):
            return

        def run() -> None:
            try:
                self._spare = self._prepare(seg_id)
                if self._prewriter is not None:
                    self._prewriter.poke()
            except BaseException as exc:  # surfaced by the next rotation, which prepares synchronously
                self._prepare_error = exc
                log.warning("%s: preparing segment %d in the background failed: %s", self.path, seg_id, exc)

        self._preparer = threading.Thread(target=run, name="orgloop-wal-prepare", daemon=True)
        self._preparer.start()

    def _rotate(self) -> None:
        """Seal the active segment (fdatasync, close) and activate the next one. Caller holds the lock.

        Everything that can fail for lack of space or permission (the byte cap, creating the next
        segment) happens before the active segment is sealed: a failure leaves the log as it was, every
        record appended so far stays readable, and appends fail with a clear error until there is room.
        """
        if self._offset == self._data_start:
            return
        self._compact_locked()
        # The next open reads only the new segment's marks: save the acks that rode on this one's (the
        # watermark only grows, so it covers every mark framed so far; a compaction just saved it).
        self._store().save_for_rotation(self.acks)
        if self.max_bytes is not None:
            while (len(self._segments) + 1) * self.segment_size > self.max_bytes:
                if self.full_policy == "error" or len(self._segments) < 2:
                    raise WalFullError(
                        f"WAL {self.path} reached its byte cap ({self.max_bytes} bytes, "
                        f"{len(self._segments)} segments of {self.segment_size}); acknowledge records so that "
                        f"compaction can free segments, or raise max_bytes")
                self._drop_oldest()
        seg_id = self._next_segment_id
        try:
            path, fallocated = self._take_spare(seg_id)
        except OSError as exc:
            raise WalError(f"cannot create WAL segment {segment_name(seg_id)} in {self.path}: "
                           f"{exc.strerror or exc}; every record appended so far is safe, appends fail until "
                           f"there is space") from exc
        self._committer.commit(self._next_seq - 1, True)
        self._unsynced = 0
        self._fault("after_seal")
        sealed, sealed_fd, sealed_end = self._segments[-1], self._fd, self._offset
        try:
            self._activate(path, fallocated)
        except OSError as exc:   # the sealed segment stays the active one: nothing is lost, appends may retry
            raise WalError(f"cannot start WAL segment {path.name} in {self.path}: {exc.strerror or exc}; every "
                           f"record appended so far is safe") from exc
        sealed.last_seq = self._segments[-1].header.last_seq_before
        sealed.data_end = sealed_end
        os.close(sealed_fd)
        self.counters["rotations"] += 1
        self._start_preparer()

    def _drop_oldest(self) -> None:
        seg = self._segments.pop(0)
        self._positions.pop(seg.id, None)
        dropped = self.acks.unacked_in(seg.first_seq, seg.last_seq or seg.first_seq)
        self.acks.ack_range(seg.first_seq, seg.last_seq or seg.first_seq)
        self.counters["dropped_records"] += dropped
        self._store().flush(self.acks, durable=True)
        seg.path.unlink(missing_ok=True)
        seglib.fsync_dir(self.path)
        log.error("%s: byte cap reached; dropped segment %s with %d unacknowledged records (full_policy=drop_oldest)",
                  self.path, seg.path.name, dropped)

    # ------------------------------------------------------------------ appending
    def _check_open(self) -> None:
        if self._closed:
            raise WalClosedError(f"WAL {self.path} is closed")

    def append(self, record: bytes) -> int:
        """Append one record; returns its sequence number once durable under the sync policy."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[bytes]) -> range:
        """Append records in order; returns their sequence numbers once durable under the sync policy.

        In a JSONL log each record must be one UTF-8 JSON value on one line (``ValueError`` otherwise,
        and nothing of the batch is appended). If the byte cap or a disk error stops a batch part-way,
        the exception's ``appended`` attribute holds the sequence numbers that were appended (and made
        durable) before it.
        """
        if self._enc == ENC_JSONL:
            self._check_open()
            for i, r in enumerate(records):
                why = json_record_error(bytes(r)) if isinstance(r, (bytes, bytearray, memoryview)) else None
                if why:
                    raise ValueError(f"JSONL records must be one UTF-8 JSON value: record {i} {why}")
        return self._append(records)

    def _append(self, records: Sequence[bytes]) -> range:
        n = len(records)
        with self._lock:
            self._check_open()
            first = self._next_seq
            if not n:
                return range(first, first)
            prewriter = self._prewriter
            assert prewriter is not None
            prewriter.last_append = time.monotonic()       # the pre-writer stays off a busy log (and after it)
            try:
                if first + n > self._seq_reserved:
                    self._reserve_seqs(first + n)
                if self.max_segment_age is not None and time.monotonic() - self._active_since > self.max_segment_age:
                    self._rotate()
                capacity = self.segment_size - self._mark_size     # room is kept for the close's durable mark
                window = self.sync_window if self.sync == "always" else capacity
                if self._unsynced and self._committer.durable_seq >= first - 1:
                    self._unsynced = 0          # all issued so far is durable: this batch opens a new window
                i = 0
                while i < n:
                    limit = min(capacity - self._offset, window - self._unsynced)
                    if self._active_fallocated:     # never write where a fill is in flight: wait for it
                        prewriter.wait_clear(self._segments[-1].path, self._offset + limit)
                    count, size = self._committer.submit_framed(self._fd, self._offset, records, i, self._next_seq,
                                                                self._segments[-1].id, self._enc, limit,
                                                                self.acks.watermark)
                    if count:
                        if self._offset >= self._indexed_upto:
                            self._note_position()
                        self._offset += size
                        self._unsynced += size
                        self._next_seq += count
                        i += count
                        continue
                    need = frame_size(len(records[i]), self._enc) + self._mark_size
                    if need > min(capacity - self._data_start, window):
                        raise WalRecordTooLargeError(
                            f"record {i} needs {need} bytes on disk, more than a segment or sync window holds "
                            f"({min(capacity - self._data_start, window)} bytes)")
                    if need <= capacity - self._offset:
                        self._committer.commit(self._next_seq - 1, True)   # keep the torn-tail window bounded
                        self._unsynced = 0
                    else:
                        self._rotate()
            except BaseException as exc:
                if self._next_seq > first:
                    self._finish(self._next_seq - 1)
                exc.appended = range(first, self._next_seq)  # type: ignore[attr-defined]
                raise
            last = self._next_seq - 1
            self.counters["appended"] += n
        self._finish(last)
        prewriter.last_append = time.monotonic()
        return range(first, last + 1)

    def _note_position(self) -> None:
        """Remember where the write at the append offset starts (its first frame, or its durable mark)."""
        self._positions.setdefault(self._segments[-1].id, []).append((self._next_seq, self._offset))
        self._indexed_upto = self._offset + POSITION_STRIDE

    def _position_before(self, seg_id: int, seq: int) -> tuple[int, int] | None:
        """The last remembered ``(offset, seq)`` of segment ``seg_id`` at or before ``seq``, if any."""
        positions = self._positions.get(seg_id)
        if not positions:
            return None
        i = bisect.bisect_right(positions, seq, key=lambda p: p[0]) - 1
        return (positions[i][1], positions[i][0]) if i >= 0 else None

    def _reserve_seqs(self, upto: int) -> None:
        """Durably reserve seqs below ``upto + BLOCK`` before issuing any of them (one LMDB commit per block)."""
        reserved = upto + seqhwm.BLOCK
        seqhwm.store(self._store().env, reserved)
        self._seq_reserved = reserved

    def _finish(self, last: int) -> None:
        self._committer.commit(last, self.sync == "always")
        if self._followers:
            with self._follow_cv:
                self._follow_cv.notify_all()

    def append_event(self, event: Any) -> int:
        """Encode one event (msgpack or JSON, as the log's encoding) and append it."""
        return self._append(self.encode_events([event]))[0]

    def append_events(self, events: Iterable[Any]) -> range:
        """Encode events and append them in one batch."""
        return self._append(self.encode_events(events))

    def encode_events(self, events: Iterable[Any]) -> list[bytes]:
        if self._enc == ENC_JSONL:
            return encode_json_many(events)
        pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        return [pack(e) for e in events]

    def decode_records(self, records: list[bytes]) -> list[Any]:
        if self._enc == ENC_JSONL:
            return decode_json_many(records)
        unpackb = msgpack.unpackb
        return [unpackb(r) for r in records]

    def sync_now(self) -> None:
        """Make everything appended so far durable (fdatasync), whatever the sync policy."""
        with self._lock:
            self._check_open()
            self._committer.commit(self._next_seq - 1, True)

    def rotate(self) -> None:
        """Seal the active segment now (no-op if it is empty)."""
        with self._lock:
            self._check_open()
            self._rotate()

    # ------------------------------------------------------------------ acks and compaction
    def _check_seq(self, seq: int) -> None:
        if not 0 < seq < self._next_seq:
            raise ValueError(f"cannot ack seq {seq}: the log holds seqs 1..{self._next_seq - 1}")

    def ack(self, seq: int) -> None:
        """Mark one record processed. Saved in batches (see ``ack_flush_interval``/``ack_flush_batch``);
        compaction frees fully acked segments."""
        self._check_open()
        self._check_seq(seq)
        self.acks.ack(seq)
        self._store().note()

    def ack_many(self, seqs: Iterable[int]) -> None:
        """Ack seqs given in any order."""
        self._check_open()
        ordered = sorted(set(seqs))     # one pass gives the bounds to check and tells a whole run apart
        if ordered:
            lo, hi = ordered[0], ordered[-1]
            self._check_seq(lo)
            self._check_seq(hi)
            if hi - lo + 1 == len(ordered):
                self.acks.ack_range(lo, hi)     # the usual case, a batch acked in any order: one range
            else:
                self.acks.ack_many(ordered)
            self._store().note()

    def ack_range(self, lo: int, hi: int) -> None:
        """Ack every seq in ``[lo, hi]``."""
        self._check_open()
        if hi >= lo:
            self._check_seq(lo)
            self._check_seq(hi)
            self.acks.ack_range(lo, hi)
            self._store().note()

    def flush_acks(self) -> None:
        """Save the ack state durably now (it is otherwise saved by a background thread at most
        ``ack_flush_interval`` after the first unsaved ack, or once ``ack_flush_batch`` acks wait)."""
        self._check_open()
        self._store().flush(self.acks, durable=True)

    def _store(self) -> AckStore:
        store = self._acks_store
        assert store is not None
        return store

    def compact(self) -> int:
        """Remove (or keep for recycling) sealed segments whose every record is acked; returns how many."""
        with self._lock:
            self._check_open()
            return self._compact_locked()

    def _compact_locked(self) -> int:
        w = self.acks.watermark
        done = []
        for seg in self._segments[:-1]:
            if seg.last_seq is None or seg.last_seq > w or seg.id in self._pins:
                break                     # a reader holds it: compacted by a later rotation or compact()
            done.append(seg)
        if not done:
            return 0
        self._store().flush(self.acks, durable=True)   # checkpoint first, delete after
        self._fault("after_checkpoint")
        del self._segments[: len(done)]
        for seg in done:
            self._positions.pop(seg.id, None)
            if len(self._recycle_pool) < MAX_RECYCLE_POOL and seg.header.capacity == self.segment_size:
                target = seg.path.with_name(seg.path.name + RECYCLE_SUFFIX)
                os.replace(seg.path, target)
                self._recycle_pool.append(target)
            else:
                seg.path.unlink(missing_ok=True)
        seglib.fsync_dir(self.path)
        self.counters["compacted_segments"] += len(done)
        return len(done)

    # ------------------------------------------------------------------ reading
    def replay(self, from_seq: int | None = None, *, unacked_only: bool = True,
               decode: bool = False, read_chunk: int = READ_CHUNK) -> Iterator[ReplayBatch]:
        """Stream records in order as batches, from ``from_seq`` (default: the oldest kept record).

        With ``unacked_only`` acked records are skipped. With ``decode`` records are decoded events.
        ``read_chunk`` bounds the bytes read (and the records in one batch) at a time.
        Records appended after the call started are not included (use :meth:`follow`).
        """
        with self._lock:
            self._check_open()
            self._committer.commit(self._next_seq - 1, False)
            segs = list(self._segments)
            tail_offset = self._offset
            stop_seq = self._next_seq
            pinned = self._pin(segs)
        try:
            yield from self._replay(segs, tail_offset, stop_seq, from_seq, unacked_only, decode, read_chunk, pinned)
        finally:
            self._unpin(pinned)

    def _pin(self, segs: list[SegmentInfo]) -> list[int]:
        """Keep ``segs`` from being compacted or recycled while a reader holds them (caller holds the lock)."""
        ids = [s.id for s in segs]
        self._pins.update(ids)
        return ids

    def _unpin(self, ids: list[int]) -> None:
        """Release the pins of ``ids``."""
        with self._lock:
            self._pins.subtract(ids)
            for seg_id in ids:
                if self._pins[seg_id] <= 0:
                    del self._pins[seg_id]

    def _replay(self, segs: list[SegmentInfo], tail_offset: int, stop_seq: int, from_seq: int | None,
                unacked_only: bool, decode: bool, read_chunk: int, pinned: list[int]) -> Iterator[ReplayBatch]:
        start = max(from_seq or 1, 1)
        if unacked_only:
            start = max(start, self.acks.watermark + 1)
        for idx, seg in enumerate(segs):
            if idx:
                self._unpin([pinned.pop(0)])            # done with the previous one: compaction may take it
            last = seg.last_seq if seg.last_seq is not None else stop_seq - 1
            if last < start:
                continue
            is_tail = idx == len(segs) - 1 and seg is self._segments[-1] and seg.last_seq is None
            view = SegmentInfo(seg.id, seg.path, seg.header, last if not is_tail else None)
            end = tail_offset if is_tail else seg.header.capacity
            try:
                yield from self._replay_segment(view, end, start, stop_seq, unacked_only, decode, read_chunk)
            except FileNotFoundError:
                continue                                # dropped by the byte cap (drop_oldest) meanwhile

    def _replay_segment(self, view: SegmentInfo, end: int, start: int, stop_seq: int, unacked_only: bool,
                        decode: bool, read_chunk: int) -> Iterator[ReplayBatch]:
        begin = self._position_before(view.id, start)
        for first, records in self._walk(view, end, collect=True, chunk=read_chunk, begin=begin):
            n = len(records)
            if first + n <= start:
                continue
            if first < start:
                records = records[start - first:]
                first = start
            if first + len(records) > stop_seq:
                records = records[: stop_seq - first]
            if not records:
                continue
            seqs: Sequence[int] = range(first, first + len(records))
            if unacked_only and (self.acks.held or first <= self.acks.watermark):
                runs = self.acks.unacked_runs(first, first + len(records) - 1)
                if runs != [(first, first + len(records) - 1)]:
                    seqs = [s for lo, hi in runs for s in range(lo, hi + 1)]
                    records = [r for lo, hi in runs for r in records[lo - first: hi - first + 1]]
            if records:
                yield ReplayBatch(seqs, self.decode_records(records) if decode else records)

    def follow(self, from_seq: int | None = None, *, unacked_only: bool = False, decode: bool = False,
               timeout: float | None = None) -> Iterator[ReplayBatch]:
        """Replay, then keep yielding new records as they are appended; stops after ``timeout`` idle seconds
        (never, if None) or when the log is closed."""
        nxt = from_seq or 1
        while not self._closed:
            got = False
            for batch in self.replay(nxt, unacked_only=unacked_only, decode=decode):
                got = True
                nxt = batch.seqs[-1] + 1
                yield batch
            if got:
                continue
            with self._follow_cv:
                self._followers += 1
                try:
                    woke = self._follow_cv.wait_for(lambda: self._closed or self._next_seq > nxt, timeout)
                finally:
                    self._followers -= 1
            if not woke:
                return

    def scrub(self, progress: Callable[[SegmentInfo], None] | None = None) -> RecoveryReport:
        """Read and checksum every kept segment now, recording (and quarantining) any damage found.

        Returns the log's recovery report, which accumulates everything found since it was opened.
        """
        with self._lock:
            self._check_open()
            self._committer.commit(self._next_seq - 1, False)
            segs = list(self._segments)
            tail = self._offset
            pinned = self._pin(segs)
        try:
            for seg in segs:
                end = tail if seg.last_seq is None else seg.header.capacity
                for _ in self._walk(seg, end, collect=False):
                    pass
                if progress:
                    progress(seg)
        finally:
            self._unpin(pinned)
        return self.recovery

    # ------------------------------------------------------------------ introspection and shutdown
    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def failed(self) -> str | None:
        """Why the log refuses writes (after a failed write/fdatasync), or None while healthy."""
        return self._committer.failed

    def stats(self) -> dict[str, Any]:
        """Counters, sizes and fdatasync statistics (cheap: no I/O)."""
        with self._lock:
            first = self._segments[0].first_seq if self._segments else self._next_seq
            last = self._next_seq - 1
            return {
                "path": str(self.path), "implementation": self.implementation, "encoding": self.encoding,
                "sync": self.sync, "segments": len(self._segments), "segment_size": self.segment_size,
                "bytes": len(self._segments) * self.segment_size, "data_bytes": self._data_bytes_locked(),
                "first_seq": first, "last_seq": last,
                "acked_watermark": self.acks.watermark, "unacked": self.acks.unacked_in(first, last),
                "lost_records": self.acks.lost, "torn_records": self.recovery.torn_records,
                "quarantined_segments": len(self.acks.quarantined),
                "acked_above_watermark": self.acks.held, "ack_ranges": self.acks.range_count,
                "ack_commits": self._store().commits, "ack_commit_seconds": self._store().commit_seconds,
                "ack_mark_rides": self._store().mark_rides,
                "ack_save_error": str(self._store().error) if self._store().error else None,
                "failed": self._committer.failed,
                "prewritten_bytes": self._prewriter.bytes_written if self._prewriter else 0,
                **self.counters, **self._committer.stats(),
            }

    def _data_bytes_locked(self) -> int:
        """Bytes of frames in the live segments (what ``bytes`` preallocates is mostly empty): the active
        segment up to its write offset, sealed ones up to where they were sealed; a segment sealed before
        this process opened the log counts as full (its end is not read at open)."""
        if not self._segments:
            return 0
        sealed = sum((s.data_end if s.data_end is not None else s.header.capacity) - self._data_start
                     for s in self._segments[:-1])
        return sealed + self._offset - self._data_start

    def close(self) -> None:
        """Make everything durable, save the acks, and release the directory.

        Every step runs even if an earlier one fails (a full disk, say): the directory's lock is always
        released, so the log can be opened again. The first failure is raised afterwards as a WalError.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            errors: list[BaseException] = []

            def step(fn: Callable[[], object]) -> None:
                try:
                    fn()
                except Exception as exc:   # noqa: BLE001  (collected, raised below)
                    errors.append(exc)

            if self._prewriter is not None:
                step(self._prewriter.stop)      # before the closing mark, which goes past the offset
            step(self._committer.stop_syncer)
            if not self._committer.failed:
                step(lambda: self._committer.commit(self._next_seq - 1, True))
                if not errors:
                    step(self._close_mark)
            clean = not errors and not self._committer.failed
            if self._preparer is not None:
                step(self._preparer.join)
            step(lambda: os.close(self._fd))
            if clean:
                self._store_clean_mark()
            step(lambda: self._store().close(self.acks))
            step(self._release_lock)
        with self._follow_cv:
            self._follow_cv.notify_all()
        if errors:
            first = errors[0]
            if isinstance(first, WalError):
                raise first
            raise WalError(f"closing the WAL in {self.path} failed: {first}; the directory was released "
                           f"and can be opened again") from first

    def _store_clean_mark(self) -> None:
        try:
            seqhwm.store(self._store().env, self._next_seq, clean=True)
        except WalError as exc:      # the next open treats this close as a crash: it skips seqs, safely
            log.warning("%s: %s", self.path, exc)

    def _close_mark(self) -> None:
        """Record that every byte of the active segment is durable: a durable mark at its end, fdatasynced."""
        if self._offset == self._opened_offset or self._offset + self._mark_size > self.segment_size:
            return
        mark = self._core.frame_mark(self._next_seq, self._segments[-1].id, self._enc, self._offset,
                                     self.acks.watermark)
        fileio.pwrite(self._fd, mark, self._offset)
        fileio.fdatasync(self._fd)
        self._offset += len(mark)

    def __enter__(self) -> "Wal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Wal {self.path} next_seq={self._next_seq} {self.implementation}>"
