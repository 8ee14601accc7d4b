"""The on-disk format of an orgloop WAL segment (see ``docs/wal-format.md``).

Shared by both twins: segment headers are not on the hot path, so they are packed and parsed here
once. The per-record framing lives in ``_wal.pyx`` / ``_wal_py.py`` and must match this description:

Binary (msgpack) segments: a 64-byte header, then records, each 8-byte aligned::

    u32 crc32c of bytes [4, 24 + len)   u32 len (payload bytes; 0 = end of data)
    u64 seq                             u64 segment id (stale bytes of a recycled segment never match)
    payload, zero-padded to a multiple of 8

Format version 2 adds to the header the last sequence number before the segment (``prev_last_seq``, so a
sequence jump at a segment boundary is not mistaken for missing records) and, between records, *durable
marks* (see ``docs/wal-format.md``). Version 1 segments stay readable.

JSONL segments: a 256-byte JSON header line, then one JSON object per line, padded with spaces to a
multiple of 8 bytes, whose fixed-width prefix carries the same fields::

    {"crc":"1a2b3c4d","len":       256,"seq":                   7,"seg":                   3,"event":<payload>}

The JSONL checksum covers the line from byte 17 (just after the crc field) through the payload.

A *durable mark* (format 2) is a frame that carries no record: its length field has :data:`MARK_FLAG`
set (binary; payload: u64 offset) or its payload key is ``"mark" :`` instead of ``"event":`` (JSONL;
payload: the offset, 20 characters). Its seq is the seq of the record that follows it; its offset says
that every byte of the segment before it was known to be fdatasynced when the mark was framed.

Format version 3 marks also carry the ack watermark when they were framed (binary payload: u64 offset,
u64 watermark; JSONL payload ``[offset,watermark]``, two 20-character numbers), so acks made in order
reach the disk with the next write round, without a commit of their own. Readers take both mark sizes.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from orgloop.errors import WalFormatError, WalNewerFormatError

__all__ = [
    "FORMAT_VERSION", "MIN_VERSION", "ENC_MSGPACK", "ENC_JSONL", "ENCODINGS", "MAGIC", "JSONL_MAGIC",
    "HEADER_SIZE", "JSONL_HEADER_SIZE", "RECORD_HEADER", "JSONL_PREFIX", "JSONL_CRC_START",
    "SegmentHeader", "pack_header", "parse_header", "data_start", "fill_byte",
    "segment_name", "parse_segment_name", "frame_size", "MARK_FLAG", "MAX_RECORD", "mark_size",
]

FORMAT_VERSION = 3
MIN_VERSION = 1
ENC_MSGPACK = 0
ENC_JSONL = 1
ENCODINGS = {"msgpack": ENC_MSGPACK, "jsonl": ENC_JSONL}
ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}

MAGIC = b"\x89OLWAL\r\n"
JSONL_MAGIC = b'{"orgloop_wal":'
HEADER_SIZE = 64
JSONL_HEADER_SIZE = 256
RECORD_HEADER = 24
JSONL_PREFIX = 97          # bytes before the payload on a JSONL record line
JSONL_CRC_START = 17       # the JSONL checksum covers [17, 97 + len)
MARK_FLAG = 0x8000_0000    # in a binary length field: this frame is a durable mark
MAX_RECORD = 0x7FFF_FFFF   # the rest of the u32 length field
MARK_PAYLOAD = 16          # binary mark payload: u64 offset, u64 ack watermark (format 2: the offset only, 8)
JSONL_MARK_PAYLOAD = 43    # JSONL mark payload: [%20d,%20d] (format 2: the offset as %20d, 20)

_BIN = struct.Struct("<8sHBBIQQQQIQ")    # 60 bytes, then u32 crc
assert _BIN.size == 60
_CRC = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """What a segment says about itself. ``first_seq == 0`` marks a prepared spare not yet in use."""

    version: int
    encoding: int
    segment_id: int
    first_seq: int
    capacity: int
    created_ns: int
    sync_window: int
    prev_last_seq: int = -1     # the last seq before this segment; -1 (version 1): ``first_seq - 1``

    @property
    def last_seq_before(self) -> int:
        """The last sequence number of the segment before this one."""
        return self.prev_last_seq if self.prev_last_seq >= 0 else max(0, self.first_seq - 1)

    @property
    def active(self) -> bool:
        return self.first_seq != 0


def data_start(encoding: int) -> int:
    return JSONL_HEADER_SIZE if encoding == ENC_JSONL else HEADER_SIZE


def fill_byte(encoding: int) -> bytes:
    """What unused space is filled with: NUL for binary, newline for JSONL (keeps the file text)."""
    return b"\n" if encoding == ENC_JSONL else b"\0"


def frame_size(payload_len: int, encoding: int) -> int:
    """Bytes one record of ``payload_len`` bytes occupies on disk."""
    if encoding == ENC_JSONL:
        return (JSONL_PREFIX + payload_len + 2 + 7) & ~7
    return (RECORD_HEADER + payload_len + 7) & ~7


def mark_size(encoding: int) -> int:
    """Bytes one durable mark occupies on disk."""
    return frame_size(JSONL_MARK_PAYLOAD if encoding == ENC_JSONL else MARK_PAYLOAD, encoding)


def pack_header(h: SegmentHeader, crc32c) -> bytes:
    """Serialise a header; ``crc32c`` is the live twin's checksum function."""
    prev = h.last_seq_before if h.version >= 2 else 0
    if h.encoding == ENC_JSONL:
        extra = ',"prev_last":%20d' % prev if h.version >= 2 else ""
        body = ('{"orgloop_wal":%d,"encoding":"jsonl","segment":%20d,"first_seq":%20d,"capacity":%20d,'
                '"created_ns":%20d,"sync_window":%10d%s,' % (h.version, h.segment_id, h.first_seq, h.capacity,
                                                            h.created_ns, h.sync_window, extra)).encode()
        line = body + b'"crc":"%08x"}' % crc32c(body)
        return line + b" " * (JSONL_HEADER_SIZE - 1 - len(line)) + b"\n"
    body = _BIN.pack(MAGIC, h.version, h.encoding, 0, 0, h.segment_id, h.first_seq, h.capacity,
                     h.created_ns, h.sync_window, prev)
    return body + _CRC.pack(crc32c(body))


def parse_header(raw: bytes, crc32c, where: str = "segment") -> SegmentHeader:
    """Parse and check a header. Raises :class:`WalFormatError` with a message naming ``where``.

    The checksum is checked before anything else: a header whose bytes are damaged is damage (the
    caller recovers the segment from its frames), never "a newer version". Only a header whose checksum
    is valid and whose version is newer raises :class:`WalNewerFormatError`.
    """
    if raw.startswith(MAGIC):
        if len(raw) < HEADER_SIZE:
            raise WalFormatError(f"{where}: header is truncated ({len(raw)} of {HEADER_SIZE} bytes)")
        (crc,) = _CRC.unpack_from(raw, 60)
        if crc != crc32c(raw[:60]):
            raise WalFormatError(f"{where}: header checksum mismatch")
        magic, version, enc, _flags, _r, seg, first, cap, created, window, prev = _BIN.unpack_from(raw)
        _check_version(version, where)
        if enc != ENC_MSGPACK:
            raise WalFormatError(f"{where}: binary header names unknown encoding {enc}")
        return SegmentHeader(version, enc, seg, first, cap, created, window, prev if version >= 2 else -1)
    if raw.startswith(JSONL_MAGIC):
        line = raw[:JSONL_HEADER_SIZE].rstrip(b"\n ")
        body, _, tail = line.rpartition(b'"crc":')
        if not (len(tail) == 11 and tail[:1] == b'"' and tail[9:] == b'"}'
                and tail[1:9].strip(b"0123456789abcdef") == b"" and int(tail[1:9], 16) == crc32c(body)):
            raise WalFormatError(f"{where}: header checksum mismatch")
        try:
            fields = json.loads(line)
            version = int(fields["orgloop_wal"])
            _check_version(version, where)
            return SegmentHeader(version, ENC_JSONL, int(fields["segment"]), int(fields["first_seq"]),
                                 int(fields["capacity"]), int(fields["created_ns"]), int(fields["sync_window"]),
                                 int(fields["prev_last"]) if version >= 2 else -1)
        except (ValueError, KeyError, TypeError):
            raise WalFormatError(f"{where}: JSONL header is not readable") from None
    raise WalFormatError(f"{where}: not an orgloop WAL segment (bad magic)")


def _check_version(version: int, where: str) -> None:
    if version > FORMAT_VERSION:
        raise WalNewerFormatError(
            f"{where} was written by WAL format version {version}, but this orgloop reads versions up to "
            f"{FORMAT_VERSION}: upgrade orgloop to read this log (nothing was changed on disk)")
    if version < MIN_VERSION:
        raise WalFormatError(f"{where}: invalid WAL format version {version}")


def segment_name(segment_id: int) -> str:
    return f"{segment_id:016x}.wal"


def parse_segment_name(name: str) -> int | None:
    """The segment id encoded in a file name, or None if the name is not a segment's."""
    if len(name) != 20 or not name.endswith(".wal"):
        return None
    try:
        return int(name[:16], 16)
    except ValueError:
        return None
