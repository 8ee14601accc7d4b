"""Replay from a seq deep inside a segment starts near it (the log remembers where its writes start),
and reads exactly the records it would read from the segment's start."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orgloop.wal import Wal
from orgloop.wal import reader as wal_reader
from orgloop.wal.log import POSITION_STRIDE


def payload(seq: int) -> bytes:
    return b"rec-%d-" % seq + b"q" * (seq % 61 + 100)


def fill(wal: Wal, batches: list[int]) -> int:
    seq = 1
    for n in batches:
        got = wal.append_many([payload(s) for s in range(seq, seq + n)])
        assert list(got) == list(range(seq, seq + n))
        seq += n
    return seq - 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.integers(1, 400), min_size=1, max_size=30), data=st.data())
def test_replay_from_any_seq_reads_exactly_the_rest(tmp_path_factory, impl, batches, data) -> None:
    path = tmp_path_factory.mktemp("wal")
    with Wal(path, implementation=impl, segment_size=256 << 10) as wal:
        last = fill(wal, batches)
        acked = data.draw(st.lists(st.integers(1, last), max_size=20, unique=True))
        wal.ack_many(acked)
        start = data.draw(st.integers(1, last + 1))
        for unacked_only in (False, True):
            got = [(s, r) for b in wal.replay(start, unacked_only=unacked_only) for s, r in zip(b.seqs, b.records)]
            want = [s for s in range(start, last + 1) if not (unacked_only and s in acked)]
            assert [s for s, _ in got] == want
            assert all(r == payload(s) for s, r in got)


def test_a_deep_replay_reads_only_near_its_start(tmp_path, impl, monkeypatch) -> None:
    """Without remembered positions a replay from the end of a 4 MiB segment re-reads all of it."""
    with Wal(tmp_path, implementation=impl, segment_size=8 << 20) as wal:
        last = fill(wal, [100] * 200)          # ~4 MiB in the active segment
        read = 0
        real_pread = os.pread

        def counting_pread(fd: int, n: int, off: int) -> bytes:
            nonlocal read
            data = real_pread(fd, n, off)
            read += len(data)
            return data

        monkeypatch.setattr(wal_reader.os, "pread", counting_pread)
        got = [s for b in wal.replay(last - 5, unacked_only=False, read_chunk=16 << 10) for s in b.seqs]
        assert got == list(range(last - 5, last + 1))
        assert read <= 2 * POSITION_STRIDE + (16 << 10), read


def test_replay_from_every_seq_starts_exactly_there(tmp_path, impl) -> None:
    """Each start, including those at and around remembered positions, gives its own record first, and
    no replay takes a record for damage."""
    big = [b"r%d-" % s + b"z" * (s * 37 % 3000 + 500) for s in range(1, 1201)]
    with Wal(tmp_path, implementation=impl, segment_size=1 << 20) as wal:
        i = 0
        for n in [1, 7, 30, 2, 90, 13] * 20:
            if i >= len(big):
                break
            i += len(wal.append_many(big[i:i + n]))
        for start in range(1, i + 1):
            first = next(wal.replay(start, unacked_only=False, read_chunk=32 << 10))
            assert first.seqs[0] == start and first.records[0] == big[start - 1], start
        assert wal.stats()["lost_records"] == 0
