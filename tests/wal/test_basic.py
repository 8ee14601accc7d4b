import msgpack
import pytest

from orgloop.errors import WalClosedError, WalError, WalRecordTooLargeError
from orgloop.wal import Wal, implementation, twins


def test_compiled_twin_is_live_when_required(monkeypatch):
    import os

    if os.environ.get("ORGLOOP_REQUIRE_COMPILED"):
        assert twins.compiled is not None and implementation() == "compiled"
    else:
        assert implementation() in ("compiled", "pure")


@pytest.mark.parametrize("encoding", ["msgpack", "jsonl"])
def test_append_replay_ack_reopen(tmp_path, impl, encoding):
    recs = [b'{"n":%d}' % i for i in range(3000)]
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl, encoding=encoding) as wal:
        assert wal.append_many(recs) == range(1, 3001)
        assert wal.append(b'{"x":1}') == 3001
        wal.ack_range(1, 1000)
        wal.ack(1002)
        got = [(s, r) for b in wal.replay() for s, r in zip(b.seqs, b.records)]
        assert got[0] == (1001, recs[1000]) and (1002, recs[1001]) not in got
        assert len(got) == 3001 - 1001
        assert wal.stats()["segments"] >= 2 and wal.stats()["rotations"] >= 1
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl) as wal:
        assert wal.recovery.clean and wal.next_seq == 3002 and wal.encoding == encoding
        assert [r for b in wal.replay(unacked_only=False, from_seq=2999) for r in b.records] == recs[2998:] + [b'{"x":1}']
        assert sum(len(b.records) for b in wal.replay()) == 3001 - 1001


def test_events_roundtrip_both_encodings(tmp_path, impl):
    events = [{"id": f"evt_{i:016x}", "payload": {"text": "line\nbreak", "n": i}} for i in range(50)]
    for enc in ("msgpack", "jsonl"):
        with Wal(tmp_path / enc, encoding=enc, segment_size=1 << 20, implementation=impl) as wal:
            wal.append_events(events)
            assert wal.append_event({"k": 1}) == 51
            decoded = [e for b in wal.replay(decode=True) for e in b.records]
            assert decoded == events + [{"k": 1}]


def test_bad_records_are_rejected_clearly(tmp_path, impl):
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl) as wal:
        with pytest.raises(TypeError, match="bytes-like, not dict"):
            wal.append_many([b"ok", {"a": 1}])
        with pytest.raises(ValueError, match="must not be empty"):
            wal.append(b"")
        with pytest.raises(WalRecordTooLargeError):
            wal.append(b"x" * (70 << 10))
        with pytest.raises(ValueError, match="cannot ack seq 5"):
            wal.ack(5)
        assert wal.next_seq == 1
    with Wal(tmp_path / "j", encoding="jsonl", segment_size=64 << 10, implementation=impl) as wal:
        with pytest.raises(ValueError, match="contains a newline"):
            wal.append(b'{"a":\n1}')
    with pytest.raises(WalClosedError):
        wal.append(b"x")


def test_directory_lock_and_encoding_mismatch(tmp_path, impl):
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl):
        with pytest.raises(WalError, match="in use by another process"):
            Wal(tmp_path, implementation=impl)
    with pytest.raises(WalError, match="holds a msgpack log"):
        Wal(tmp_path, encoding="jsonl", implementation=impl)


def test_compaction_frees_acked_segments_and_recycles(tmp_path, impl):
    with Wal(tmp_path, segment_size=32 << 10, implementation=impl) as wal:
        rng = wal.append_many([b"r" * 200] * 1000)
        segs = wal.stats()["segments"]
        wal.ack_range(1, rng[-1])
        assert wal.compact() == segs - 1
        assert wal.stats()["segments"] == 1
        wal.append_many([b"s" * 200] * 1000)   # reuses recycled files
        assert list(b.records[0] for b in wal.replay())[0] == b"s" * 200
    with Wal(tmp_path, segment_size=32 << 10, implementation=impl) as wal:
        assert wal.next_seq == 2001 and sum(len(b.records) for b in wal.replay()) == 1000


def test_msgpack_records_are_plain_msgpack(tmp_path, impl):
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl) as wal:
        wal.append_event({"a": [1, 2]})
        (batch,) = list(wal.replay())
        assert msgpack.unpackb(batch.records[0]) == {"a": [1, 2]}


@pytest.mark.parametrize("encoding", ["msgpack", "jsonl"])
def test_a_segment_left_empty_by_rotation_is_still_the_active_one_after_reopen(tmp_path, impl, encoding):
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl, encoding=encoding) as wal:
        wal.append_many([b'{"n":1}', b'{"n":2}'])
        wal.rotate()
        active = wal.stats()["segments"]
    files_before = sorted(p.name for p in tmp_path.glob("*.wal"))
    with Wal(tmp_path, segment_size=64 << 10, implementation=impl) as wal:
        assert wal.recovery.clean and wal.stats()["segments"] == active
        assert wal.append(b'{"n":3}') == 3
        assert [r for b in wal.replay(unacked_only=False) for r in b.records] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    # nothing was left behind as a stray spare: the files are the segments (and at most one prepared spare)
    assert set(files_before) <= {p.name for p in tmp_path.glob("*.wal")}
    assert len(list(tmp_path.glob("*.wal"))) <= active + 1
