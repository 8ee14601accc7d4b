"""The compiled and pure twins must write the same bytes and read any bytes the same way."""
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgloop._twins import require_compiled
from orgloop.wal import Wal, twins
from orgloop.wal.format import ENC_JSONL, ENC_MSGPACK, MARK_FLAG, mark_size

C, PY = twins.compiled, twins.pure
SCAN_MORE = PY.SCAN_MORE
needs_compiled = pytest.mark.skipif(C is None and not require_compiled(), reason="compiled WAL not built")

records_st = st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=25)
seq_st = st.integers(min_value=1, max_value=2**63 - 10_000)
seg_st = st.integers(min_value=1, max_value=2**64 - 1)


def _jsonl_safe(records):
    return [r.replace(b"\n", b" ") for r in records]


@needs_compiled
def test_known_crc32c_vectors():
    for m in (C, PY):
        assert m.crc32c(b"123456789") == 0xE3069283
        assert m.crc32c(b"") == 0
        assert m.crc32c(b"6789", m.crc32c(b"12345")) == 0xE3069283
        assert m.crc32c(bytes(32)) == 0x8A9136AA


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=60_000), cut=st.integers(min_value=0), offset=st.integers(min_value=0, max_value=7))
def test_crc32c_agrees_across_block_sizes_alignments_and_continuations(data, cut, offset):
    """The compiled CRC runs three interleaved streams over 8 KiB and 256 B blocks and joins them."""
    view = memoryview(bytes(offset) + data)[offset:]
    cut %= len(data) + 1
    assert C.crc32c(view) == PY.crc32c(data)
    assert C.crc32c(view[cut:], C.crc32c(view[:cut])) == PY.crc32c(data)


@needs_compiled
@pytest.mark.parametrize("n", [767, 768, 769, 24_575, 24_576, 24_577, 3 * 24_576 + 3 * 768 + 11])
def test_crc32c_at_the_interleaving_boundaries(n):
    data = bytes(range(256)) * (n // 256 + 1)
    assert C.crc32c(data[:n]) == PY.crc32c(data[:n])


@needs_compiled
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(batches=st.lists(records_st, min_size=1, max_size=4), enc=st.sampled_from([ENC_MSGPACK, ENC_JSONL]),
       limit=st.integers(min_value=0, max_value=40_000), start=st.integers(min_value=0, max_value=3),
       acked=st.integers(min_value=0, max_value=2**63))
def test_submit_framed_writes_what_frame_then_submit_writes(tmp_path_factory, batches, enc, limit, start, acked):
    """The compiled committer frames straight into its buffer; the file must hold the same bytes as the
    pure twin's, and both must report the same (count, size). A write round starts with a durable mark."""
    out = {}
    for name, twin in (("c", C), ("py", PY)):
        path = tmp_path_factory.mktemp(name) / "seg"
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            committer, offset, seq, counts = twin.Committer(), 0, 1, []
            for records in batches:
                records = _jsonl_safe(records) if enc == ENC_JSONL else records
                i = min(start, len(records))
                count, size = committer.submit_framed(fd, offset, records, i, seq, 7, enc, limit, acked)
                counts.append((count, size))
                offset += size
                seq += count
            assert committer.synced_acked == 0
            committer.commit(seq - 1, True)
            assert committer.synced_acked == (acked if any(c for c, _s in counts) else 0)
            out[name] = (counts, path.read_bytes())
        finally:
            os.close(fd)
    assert out["c"] == out["py"]
    first = _jsonl_safe(batches[0]) if enc == ENC_JSONL else batches[0]
    i = min(start, len(first))
    if out["py"][0][0][0]:
        expected = PY.frame_mark(1, 7, enc, 0, acked) + PY.frame(first, i, 1, 7, enc, limit - mark_size(enc))[1]
        assert out["py"][1][:out["py"][0][0][1]] == expected


@needs_compiled
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_st, first=seq_st, seg=seg_st, enc=st.sampled_from([ENC_MSGPACK, ENC_JSONL]),
       limit=st.integers(min_value=0, max_value=90_000))
def test_frame_is_byte_identical(records, first, seg, enc, limit):
    if enc == ENC_JSONL:
        records = _jsonl_safe(records)
    assert C.frame(records, 0, first, seg, enc, limit) == PY.frame(records, 0, first, seg, enc, limit)


@needs_compiled
@settings(max_examples=60, deadline=None)
@given(seq=seq_st, seg=seg_st, enc=st.sampled_from([ENC_MSGPACK, ENC_JSONL]),
       durable=st.integers(min_value=0, max_value=2**63), acked=st.integers(min_value=0, max_value=2**63))
def test_durable_marks_are_byte_identical(seq, seg, enc, durable, acked):
    mark = PY.frame_mark(seq, seg, enc, durable, acked)
    assert C.frame_mark(seq, seg, enc, durable, acked) == mark
    assert len(mark) == mark_size(enc)
    for twin in (C, PY):
        assert twin.scan(mark, 0, len(mark), seg, seq, enc, True) == ([], 0, len(mark), SCAN_MORE, durable, acked)


def _v2_mark(seq: int, seg: int, enc: int, durable: int) -> bytes:
    """A format-2 durable mark (the offset only), as orgloop wrote them before format 3."""
    if enc == ENC_JSONL:
        tail = b',"len":%10d,"seq":%20d,"seg":%20d,"mark" :%20d' % (20, seq, seg, durable)
        return b'{"crc":"%08x"' % PY.crc32c(tail) + tail + b" }\n"
    tail = struct.pack("<IQQQ", MARK_FLAG | 8, seq, seg, durable)
    return struct.pack("<I", PY.crc32c(tail)) + tail


def _framed_with_marks(records, first, seg, enc, cuts):
    """Records framed in rounds, each round starting with a durable mark (as the committer writes them;
    the first of format 2, as a log written before format 3 holds); returns the bytes and the highest
    offset and ack watermark the marks name."""
    out, seq, done, mark, acked = [], first, 0, 0, 0
    for cut in sorted(set(cuts)) + [len(records)]:
        if cut <= done:
            continue
        mark += 1000
        if done:
            acked = seq - 1
            out.append(PY.frame_mark(seq, seg, enc, mark, acked))
        else:
            out.append(_v2_mark(seq, seg, enc, mark))
        _n, framed = PY.frame(records[done:cut], 0, seq, seg, enc, 1 << 30)
        out.append(framed)
        seq += cut - done
        done = cut
    return b"".join(out), mark, acked


@needs_compiled
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=records_st, first=seq_st, seg=seg_st, enc=st.sampled_from([ENC_MSGPACK, ENC_JSONL]),
       data=st.data())
def test_scan_and_resync_agree_on_damaged_bytes(records, first, seg, enc, data):
    if enc == ENC_JSONL:
        records = _jsonl_safe(records)
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=4))
    framed, highest, acked = _framed_with_marks(records, first, seg, enc, cuts)
    buf = bytearray(framed + bytes(64))
    kind = data.draw(st.sampled_from(["none", "flip", "truncate", "zero"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del buf[data.draw(st.integers(0, len(buf))):]
    elif kind == "zero":
        a = data.draw(st.integers(0, len(buf)))
        b = data.draw(st.integers(a, min(len(buf), a + 600)))
        buf[a:b] = bytes(b - a)
    raw = bytes(buf)
    for collect in (True, False):
        assert C.scan(raw, 0, len(raw), seg, first, enc, collect) == PY.scan(raw, 0, len(raw), seg, first, enc, collect)
    start = data.draw(st.integers(0, max(0, len(raw) - 1)))
    assert C.resync(raw, start, len(raw), seg, first, enc) == PY.resync(raw, start, len(raw), seg, first, enc)
    if kind == "none":
        out, count, _pos, _status, durable, marked = C.scan(raw, 0, len(raw), seg, first, enc, True)
        assert out == records and count == len(records) and durable == highest and marked == acked


@needs_compiled
@pytest.mark.parametrize("encoding", ["msgpack", "jsonl"])
@pytest.mark.parametrize("writer,reader", [("compiled", "pure"), ("pure", "compiled")])
def test_a_log_written_by_one_twin_reads_back_identically_with_the_other(tmp_path, encoding, writer, reader):
    recs = [b'{"i":%d,"pad":"%s"}' % (i, b"y" * (i % 300)) for i in range(2500)]
    with Wal(tmp_path, encoding=encoding, segment_size=32 << 10, implementation=writer) as wal:
        wal.append_many(recs[:1000])
        for r in recs[1000:]:
            wal.append(r)
        wal.ack_range(1, 700)
    with Wal(tmp_path, segment_size=32 << 10, implementation=reader) as wal:
        assert wal.recovery.clean and wal.next_seq == 2501
        got = [(s, r) for b in wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)]
        kept_from = got[0][0]
        assert got == list(zip(range(kept_from, 2501), recs[kept_from - 1:]))
        assert [s for b in wal.replay() for s in b.seqs] == list(range(701, 2501))
