"""Pure-Python twin of ``_wal.pyx``: same API, same bytes on disk, same errors.

It is the reference the compiled module is tested against, and the fallback where no C compiler was
available (``ORGLOOP_PUREPYTHON=1`` forces it).
"""
from __future__ import annotations

import os
import signal
import struct
import threading
import time
from typing import Sequence

import crc32c as _crc32c_mod

from orgloop.errors import WalError
from orgloop.wal import fileio
from orgloop.wal.format import (ENC_JSONL, JSONL_CRC_START, JSONL_MARK_PAYLOAD, JSONL_PREFIX, MARK_FLAG, MARK_PAYLOAD,
                                MAX_RECORD, RECORD_HEADER, frame_size)

__all__ = ["crc32c", "frame", "frame_mark", "scan", "resync", "Committer", "SCAN_MORE", "SCAN_END", "SCAN_CORRUPT",
           "SYNC_BUCKETS_US"]

SCAN_MORE = 0      # the buffer ended inside (or before) a frame: read more, or the tail is torn
SCAN_END = 1       # a clean end of data: length 0, fill bytes, or a stale frame of an older segment
SCAN_CORRUPT = 2   # a frame of this segment whose checksum, sequence number or shape is wrong

# Upper bounds (µs) of the fdatasync-latency histogram buckets; the last bucket is open-ended.
SYNC_BUCKETS_US = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000)

_crc = _crc32c_mod.crc32c
_HEAD = struct.Struct("<IIQQ")
_TAIL = struct.Struct("<IQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ZEROS = b"\0" * 8
_SPACES = b" " * 8
_MARK = -2          # _frame_at: a valid durable mark (a valid record is -1)
_MARK_V2_PAYLOAD = 8        # format 2 marks: the offset only (binary u64; JSONL %20d)
_JSONL_MARK_V2_PAYLOAD = 20


def crc32c(data: bytes, value: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``value``."""
    return _crc(data, value)


def _record_error(i: int, r: object) -> TypeError:
    return TypeError(f"WAL records must be bytes-like, not {type(r).__name__} (record {i})")


def frame(records: Sequence[bytes], start: int, first_seq: int, segment_id: int, encoding: int,
          max_bytes: int) -> tuple[int, bytes]:
    """Frame ``records[start:]`` as consecutive records ``first_seq, first_seq+1, …``.

    Stops before the first record that would make the output exceed ``max_bytes``.
    Returns ``(count, framed_bytes)``.
    """
    parts: list[bytes] = []
    size = 0
    seq = first_seq
    n = len(records)
    i = start
    jsonl = encoding == ENC_JSONL
    while i < n:
        r = records[i]
        if not isinstance(r, bytes):
            try:
                r = bytes(memoryview(r))
            except TypeError:
                raise _record_error(i, r) from None
        ln = len(r)
        if ln == 0:
            raise ValueError(f"WAL records must not be empty (record {i}): length 0 marks the end of data")
        if ln > MAX_RECORD:
            raise ValueError(f"WAL records must be smaller than 2 GiB (record {i} has {ln} bytes)")
        if jsonl:
            if b"\n" in r:
                raise ValueError(f"JSONL records must be single-line JSON: record {i} contains a newline")
            raw = JSONL_PREFIX + ln + 2
            fs = (raw + 7) & ~7
            if size + fs > max_bytes:
                break
            tail = b',"len":%10d,"seq":%20d,"seg":%20d,"event":' % (ln, seq, segment_id)
            parts.append(b'{"crc":"%08x"' % _crc(r, _crc(tail)))
            parts.append(tail)
            parts.append(r)
            parts.append(_SPACES[: fs - raw] + b"}\n")
        else:
            fs = (RECORD_HEADER + ln + 7) & ~7
            if size + fs > max_bytes:
                break
            tail = _TAIL.pack(ln, seq, segment_id)
            parts.append(_U32.pack(_crc(r, _crc(tail))))
            parts.append(tail)
            parts.append(r)
            pad = fs - RECORD_HEADER - ln
            if pad:
                parts.append(_ZEROS[:pad])
        size += fs
        seq += 1
        i += 1
    return i - start, b"".join(parts)


def frame_mark(seq: int, segment_id: int, encoding: int, durable: int, acked: int) -> bytes:
    """A durable mark: every byte of the segment before ``durable`` was fdatasynced, every seq up to
    ``acked`` was acknowledged; ``seq`` comes next."""
    if encoding == ENC_JSONL:
        tail = b',"len":%10d,"seq":%20d,"seg":%20d,"mark" :[%20d,%20d]' % (JSONL_MARK_PAYLOAD, seq, segment_id,
                                                                           durable, acked)
        pad = frame_size(JSONL_MARK_PAYLOAD, ENC_JSONL) - (JSONL_PREFIX + JSONL_MARK_PAYLOAD + 2)
        return b'{"crc":"%08x"' % _crc(tail) + tail + b" " * pad + b"}\n"
    tail = _TAIL.pack(MARK_FLAG | MARK_PAYLOAD, seq, segment_id) + _U64.pack(durable) + _U64.pack(acked)
    return _U32.pack(_crc(tail)) + tail


def _dec_field(field: bytes) -> int | None:
    """Spaces then at least one ASCII digit (the writer's fixed-width ``%Nd`` format), else None."""
    digits = field.lstrip(b" ")
    return int(digits) if digits and digits.isdigit() else None


def _parse_jsonl_prefix(buf, pos: int) -> tuple[int, int, int, int, bool] | None:
    """(crc, len, seq, seg, is_mark) of a JSONL frame prefix at ``pos``, or None if it is not one."""
    p = bytes(buf[pos:pos + JSONL_PREFIX])
    key = p[88:97]
    if (p[:8] != b'{"crc":"' or p[16:24] != b'","len":' or p[34:41] != b',"seq":'
            or p[61:68] != b',"seg":' or (key != b',"event":' and key != b',"mark" :')):
        return None
    crc = p[8:16]
    if crc.strip(b"0123456789abcdef"):
        return None
    ln, seq, seg = _dec_field(p[24:34]), _dec_field(p[41:61]), _dec_field(p[68:88])
    if ln is None or seq is None or seg is None:
        return None
    return int(crc, 16), ln, seq, seg, key == b',"mark" :'


def _frame_at(buf, pos: int, end: int, segment_id: int, encoding: int):
    """Classify the frame at ``pos``: returns (status, seq, frame_size, payload_start, payload_len).

    ``status`` is -1 for a valid record, ``_MARK`` for a valid durable mark, else a ``SCAN_*`` code.
    """
    if encoding == ENC_JSONL:
        if end - pos < 1:
            return SCAN_MORE, 0, 0, 0, 0
        if buf[pos] != 0x7B:  # '{'
            return SCAN_END, 0, 0, 0, 0
        if end - pos < JSONL_PREFIX:
            return SCAN_MORE, 0, 0, 0, 0
        fields = _parse_jsonl_prefix(buf, pos)
        if fields is None:
            return SCAN_CORRUPT, 0, 0, 0, 0
        crc, ln, seq, seg, is_mark = fields
        if seg != segment_id:
            return SCAN_END, 0, 0, 0, 0
        if ln == 0 or (is_mark and ln != JSONL_MARK_PAYLOAD and ln != _JSONL_MARK_V2_PAYLOAD):
            return SCAN_CORRUPT, 0, 0, 0, 0
        raw = JSONL_PREFIX + ln + 2
        fs = (raw + 7) & ~7
        if pos + fs > end:
            return SCAN_MORE, seq, fs, 0, 0
        if (_crc(buf[pos + JSONL_CRC_START:pos + JSONL_PREFIX + ln]) != crc
                or buf[pos + fs - 2:pos + fs] != b"}\n"
                or bytes(buf[pos + JSONL_PREFIX + ln:pos + fs - 2]).strip(b" ")):
            return SCAN_CORRUPT, seq, fs, 0, 0
        if is_mark:
            if _jsonl_mark_fields(bytes(buf[pos + JSONL_PREFIX:pos + JSONL_PREFIX + ln])) is None:
                return SCAN_CORRUPT, seq, fs, 0, 0
            return _MARK, seq, fs, pos + JSONL_PREFIX, ln
        return -1, seq, fs, pos + JSONL_PREFIX, ln
    if end - pos < RECORD_HEADER:
        if end - pos >= 8 and _U32.unpack_from(buf, pos + 4)[0] == 0:
            return SCAN_END, 0, 0, 0, 0
        return SCAN_MORE, 0, 0, 0, 0
    crc, ln, seq, seg = _HEAD.unpack_from(buf, pos)
    if ln == 0:
        return SCAN_END, 0, 0, 0, 0
    if seg != segment_id:
        return SCAN_END, 0, 0, 0, 0
    status = -1
    if ln & MARK_FLAG:
        ln &= ~MARK_FLAG
        if ln != MARK_PAYLOAD and ln != _MARK_V2_PAYLOAD:
            return SCAN_CORRUPT, seq, 0, 0, 0
        status = _MARK
    fs = (RECORD_HEADER + ln + 7) & ~7
    if pos + fs > end:
        return SCAN_MORE, seq, fs, 0, 0
    if _crc(buf[pos + 4:pos + RECORD_HEADER + ln]) != crc:
        return SCAN_CORRUPT, seq, fs, 0, 0
    return status, seq, fs, pos + RECORD_HEADER, ln


def _jsonl_mark_fields(payload: bytes) -> tuple[int, int] | None:
    """``(durable, acked)`` of a JSONL mark payload (format 2: the offset alone, acked 0), else None."""
    if len(payload) == _JSONL_MARK_V2_PAYLOAD:
        durable = _dec_field(payload)
        return None if durable is None else (durable, 0)
    if payload[:1] != b"[" or payload[21:22] != b"," or payload[42:] != b"]":
        return None
    durable, acked = _dec_field(payload[1:21]), _dec_field(payload[22:42])
    return None if durable is None or acked is None else (durable, acked)


def _mark_values(buf, p0: int, ln: int, encoding: int) -> tuple[int, int]:
    """``(durable, acked)`` carried by a valid mark's payload."""
    if encoding == ENC_JSONL:
        fields = _jsonl_mark_fields(bytes(buf[p0:p0 + ln]))
        assert fields is not None
        return fields
    return _U64.unpack_from(buf, p0)[0], _U64.unpack_from(buf, p0 + 8)[0] if ln == MARK_PAYLOAD else 0


def scan(buf, start: int, end: int, segment_id: int, expected_seq: int, encoding: int,
         collect: bool) -> tuple[list[bytes] | None, int, int, int, int, int]:
    """Walk and verify frames in ``buf[start:end]``, expecting sequence numbers from ``expected_seq``.

    Returns ``(records or None, count, pos, status, durable, acked)``: ``pos`` is where scanning stopped,
    ``status`` one of ``SCAN_MORE``, ``SCAN_END``, ``SCAN_CORRUPT``, and ``durable`` and ``acked`` the
    highest offset and ack watermark named by a durable mark passed on the way (0 if none). ``buf[0]``
    must sit at an 8-byte-aligned file offset.
    """
    mv = memoryview(buf)
    out: list[bytes] | None = [] if collect else None
    pos = start
    seq = expected_seq
    durable = acked = 0
    while True:
        status, rseq, fs, p0, ln = _frame_at(mv, pos, end, segment_id, encoding)
        if status >= 0:
            break
        if rseq != seq:
            status = SCAN_CORRUPT
            break
        if status == _MARK:
            d, a = _mark_values(mv, p0, ln, encoding)
            durable, acked = max(durable, d), max(acked, a)
        else:
            if out is not None:
                out.append(bytes(mv[p0:p0 + ln]))
            seq += 1
        pos += fs
    return out, seq - expected_seq, pos, status, durable, acked


def resync(buf, start: int, end: int, segment_id: int, min_seq: int, encoding: int) -> tuple[int, int]:
    """Find the first valid frame of ``segment_id`` with seq ≥ ``min_seq`` at an aligned offset ≥ ``start``.

    Returns ``(pos, seq)``, or ``(-1, 0)`` if there is none before ``end``. Used after damage, to tell
    a torn tail (nothing valid follows) from corruption in the middle (valid records follow).
    """
    mv = memoryview(buf)
    if encoding == ENC_JSONL:
        needle, back = b'{"crc":"', 0
    else:
        needle, back = _U64.pack(segment_id), 16
    raw = bytes(mv[:end]) if not isinstance(buf, bytes) else buf
    p = raw.find(needle, start + back, end)
    while p >= 0:
        cand = p - back
        if cand % 8 == 0:
            status, seq, fs, _p0, _ln = _frame_at(mv, cand, end, segment_id, encoding)
            if status < 0 and seq >= min_seq:
                return cand, seq
        p = raw.find(needle, p + 1, end)
    return -1, 0


class Committer:
    """Group commit: writes queued frames and fdatasyncs them, one leader at a time.

    ``submit`` queues bytes for a file offset; ``commit(seq, sync)`` returns once everything up to
    ``seq`` is written (and, with ``sync``, fdatasynced). Whoever calls ``commit`` while no write is in
    progress becomes the leader and writes *everything* queued so far in one round, so concurrent
    appenders share one fdatasync; there is no artificial delay. After a failed write or fdatasync the
    committer refuses all further work (the page cache can no longer be trusted; reopen the log).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cv = threading.Condition(self._lock)
        self._pending: list[tuple[int, int, bytes]] = []
        self._pending_seq = 0
        self._written = 0
        self._durable = 0
        self._leader = False
        self._error: str | None = None
        self._dirty: list[int] = []
        self._syncs = 0
        self._sync_ns = 0
        self._buckets = [0] * (len(SYNC_BUCKETS_US) + 1)
        self._syncer: threading.Thread | None = None
        self._stop = threading.Event()
        self._crash_after_write = 0
        self._last_fd = -1          # the file and end offset of the last chunk written ...
        self._last_end = 0
        self._synced_fd = -1        # ... and of the last chunk known to be fdatasynced (durable marks)
        self._synced_end = 0
        self._pending_acked = 0     # the ack watermark carried by the mark queued in this round
        self._written_acked = 0     # ... by the marks written so far, and by those known fdatasynced
        self._synced_acked = 0

    def set_fault(self, point: str, hits: int) -> None:
        """Test hook: SIGKILL this process at the ``hits``-th time ``point`` is reached.

        The only point is ``after_write``: data written, not yet fdatasynced.
        """
        if point != "after_write":
            raise ValueError(f"unknown fault point {point!r}")
        self._crash_after_write = hits

    def reset(self, seq: int, fd: int = -1, offset: int = 0) -> None:
        """Declare everything up to ``seq`` written and durable (used when a log is opened), and the
        bytes of ``fd`` before ``offset`` fdatasynced."""
        with self._lock:
            self._pending_seq = self._written = self._durable = max(self._durable, seq)
            self._last_fd = self._synced_fd = fd
            self._last_end = self._synced_end = offset

    def submit(self, fd: int, offset: int, data: bytes, last_seq: int) -> None:
        with self._lock:
            if self._error is not None:
                raise WalError(self._error)
            self._pending.append((fd, offset, data))
            self._pending_seq = last_seq

    def submit_framed(self, fd: int, offset: int, records: Sequence[bytes], start: int, first_seq: int,
                      segment_id: int, encoding: int, max_bytes: int, acked: int) -> tuple[int, int]:
        """Frame ``records[start:]`` (as :func:`frame`) and queue them for ``fd`` at ``offset``.

        The first submission of a write round (nothing queued yet) starts with a durable mark naming
        the offset of ``fd`` known to be fdatasynced, so recovery knows where durability ended, and the
        ack watermark ``acked``, so in-order acks reach the disk with the round.
        Returns ``(count, bytes queued)``; the compiled twin frames straight into its pending buffer.
        """
        with self._lock:
            if self._error is not None:
                raise WalError(self._error)
            mark = b""
            if not self._pending:
                mark = frame_mark(first_seq, segment_id, encoding,
                                  self._synced_end if self._synced_fd == fd else 0, acked)
            count, data = frame(records, start, first_seq, segment_id, encoding, max_bytes - len(mark))
            if count:
                self._pending.append((fd, offset, mark + data if mark else data))
                self._pending_seq = first_seq + count - 1
                if mark:
                    self._pending_acked = acked
        return count, len(data) + len(mark) if count else 0

    @property
    def written_seq(self) -> int:
        return self._written

    @property
    def durable_seq(self) -> int:
        return self._durable

    @property
    def synced_acked(self) -> int:
        """The highest ack watermark carried by a durable mark known to be fdatasynced."""
        return self._synced_acked

    @property
    def failed(self) -> str | None:
        return self._error

    def commit(self, seq: int, sync: bool) -> None:
        with self._cv:
            while True:
                if self._error is not None:
                    raise WalError(self._error)
                if (self._durable if sync else self._written) >= seq:
                    return
                if self._leader:
                    self._cv.wait()
                    continue
                self._leader = True
                batch, self._pending = self._pending, []
                batch_acked, self._pending_acked = self._pending_acked, 0
                target = self._pending_seq if batch else self._written
                if batch:
                    self._last_fd, self._last_end = batch[-1][0], batch[-1][1] + len(batch[-1][2])
                last_fd, last_end = self._last_fd, self._last_end
                self._lock.release()
                error = None
                try:
                    error = self._io(batch, sync)
                finally:
                    self._lock.acquire()
                    self._leader = False
                    if error is None:
                        self._written = max(self._written, target)
                        self._written_acked = max(self._written_acked, batch_acked)
                        if sync:
                            self._durable = max(self._durable, target)
                            self._synced_fd, self._synced_end = last_fd, last_end
                            self._synced_acked = self._written_acked
                    else:
                        self._error = error
                    self._cv.notify_all()

    def _io(self, batch: list[tuple[int, int, bytes]], sync: bool) -> str | None:
        dirty = self._dirty
        try:
            for fd, offset, data in batch:
                view = memoryview(data)
                while view:
                    n = fileio.pwrite(fd, view, offset)
                    view = view[n:]
                    offset += n
                if not dirty or dirty[-1] != fd:
                    dirty.append(fd)
            if self._crash_after_write > 0:
                self._crash_after_write -= 1
                if self._crash_after_write == 0:
                    os.write(2, b"ORGLOOP-WAL-FAULT after_write\n")    # the crash tests check it was reached
                    os.kill(os.getpid(), signal.SIGKILL)
            if sync:
                for fd in dirty:
                    t0 = time.perf_counter_ns()
                    fileio.fdatasync(fd)
                    self._record_sync(time.perf_counter_ns() - t0)
                dirty.clear()
        except OSError as exc:
            return f"WAL write failed ({exc.strerror or exc}); the log refuses further writes until it is reopened"
        return None

    def _record_sync(self, ns: int) -> None:
        self._syncs += 1
        self._sync_ns += ns
        us = ns // 1000
        for i, bound in enumerate(SYNC_BUCKETS_US):
            if us <= bound:
                self._buckets[i] += 1
                return
        self._buckets[-1] += 1

    def sync_now(self) -> None:
        """Write everything queued and fdatasync it."""
        self.commit(self._pending_seq, True)

    def stats(self) -> dict:
        return {"syncs": self._syncs, "sync_seconds": self._sync_ns / 1e9,
                "sync_histogram": list(self._buckets), "written_seq": self._written,
                "durable_seq": self._durable}

    def start_syncer(self, interval: float) -> None:
        """fdatasync at most ``interval`` seconds after a write (the ``interval`` sync policy)."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                if self._durable < self._pending_seq:
                    try:
                        self.sync_now()
                    except WalError:
                        return

        self._syncer = threading.Thread(target=loop, name="orgloop-wal-syncer", daemon=True)
        self._syncer.start()

    def stop_syncer(self) -> None:
        if self._syncer is not None:
            self._stop.set()
            self._syncer.join()
            self._syncer = None
