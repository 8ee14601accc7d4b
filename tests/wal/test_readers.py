"""Readers and compaction coexist: replay, follow and scrub never fail or misread while the writer acks,
rotates, compacts and recycles segments under them (the segments a reader holds are pinned)."""
from __future__ import annotations

import threading

import pytest

from orgloop.wal import Wal

SEG = 16 << 10
TRIALS = 8
ROUNDS = 60


def payload(seq: int) -> bytes:
    return b"rec-%d-" % seq + b"p" * (seq % 97 + 40)


def check_batches(batches, first_expected=None, *, contiguous=True) -> list[int]:
    """Every record is the one written under its seq, and seqs are contiguous (from ``first_expected``,
    if given): a reader never skips a segment it started with. Returns the seqs read."""
    seen: list[int] = []
    prev = None if first_expected is None else first_expected - 1
    for b in batches:
        assert len(b.seqs) == len(b.records)
        for s, r in zip(b.seqs, b.records):
            assert r == payload(s), (s, r[:20])
            if prev is not None:
                assert s == prev + 1 if contiguous else s > prev, (prev, s)
            prev = s
            seen.append(s)
    return seen


def one_trial(path, impl, trial: int) -> tuple[int, int]:
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = [0]
    with Wal(path, segment_size=SEG, implementation=impl) as wal:
        def reader(kind: str) -> None:
            try:
                while not stop.is_set():
                    if kind == "all":
                        last = wal.next_seq - 1
                        got = check_batches(wal.replay(unacked_only=False))
                        assert not last or got[-1] >= last          # read up to where the log was
                    elif kind == "unacked":
                        check_batches(wal.replay(unacked_only=True), contiguous=False)
                    elif kind == "follow":
                        check_batches(wal.follow(unacked_only=False, timeout=0.02))
                    else:
                        wal.scrub()
                    reads[0] += 1
            except BaseException as exc:     # noqa: BLE001  (reported by the main thread)
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(k,)) for k in ("all", "all", "unacked", "follow", "scrub")]
        for t in threads:
            t.start()
        try:
            for r in range(ROUNDS):
                first = wal.next_seq
                batch = [payload(s) for s in range(first, first + 20 + (r * 7 + trial) % 30)]
                assert wal.append_many(batch) == range(first, first + len(batch))
                wal.ack_range(max(1, first - 40), first + len(batch) // 2)   # acks lag a little behind
                wal.rotate()
                wal.compact()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors[0]
        stats = wal.stats()
        assert stats["lost_records"] == 0 and wal.recovery.clean
        # and a snapshot taken now still reads every kept record, contiguously
        check_batches(wal.replay(unacked_only=False), stats["first_seq"])
        return stats["compacted_segments"], reads[0]


@pytest.mark.slow
def test_readers_never_fail_or_misread_while_segments_are_compacted_and_recycled(tmp_path, impl):
    compacted = reads = 0
    for trial in range(TRIALS):
        c, r = one_trial(tmp_path / f"t{trial}", impl, trial)
        compacted += c
        reads += r
    assert compacted > TRIALS and reads > TRIALS      # the race was exercised, not avoided


def test_a_replay_in_progress_keeps_its_segments_until_it_moves_on(tmp_path, impl):
    """Deterministic: a reader paused inside the first segment keeps it; compaction takes it afterwards."""
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        seqs = wal.append_many([payload(s) for s in range(1, 301)])
        wal.rotate()
        it = wal.replay(unacked_only=False, read_chunk=4096)
        first = next(it)
        assert first.seqs[0] == 1
        wal.ack_range(1, 300)
        assert wal.compact() == 0                       # pinned by the paused reader
        assert len(check_batches(it, first.seqs[-1] + 1)) == 300 - len(first.seqs)
        assert wal.compact() > 0                        # released once the reader finished
        assert seqs[-1] == 300
        abandoned = wal.replay(unacked_only=False)
        next(abandoned, None)
        abandoned.close()                               # an abandoned reader releases its pins too
        assert not wal._pins


@pytest.mark.parametrize("encoding", ["jsonl", "msgpack"])
def test_a_recycled_segment_shows_no_stale_record(tmp_path, impl, encoding):
    """JSONL files stay greppable: a reused segment holds only its own records. Binary ones are never
    read as records (an older segment id), which is all they promise."""
    with Wal(tmp_path, segment_size=SEG, implementation=impl, encoding=encoding) as wal:
        wal.append_events([{"old": i, "pad": "x" * 100} for i in range(300)])
        wal.ack_range(1, 300)
        wal.rotate()
        assert wal.compact() > 0
        recycled = {p.stat().st_ino for p in tmp_path.glob("*.recycle")}
        assert recycled
        for _ in range(4):                              # rotate until a recycled file is live again
            wal.append_event({"new": 1})
            wal.rotate()
        live = {p.stat().st_ino: p for p in tmp_path.glob("*.wal")}
        assert recycled & set(live)                     # a recycled file is a live segment again
        events = [e for b in wal.replay(unacked_only=False, decode=True) for e in b.records]
        assert events and all("new" in e for e in events)
    if encoding == "jsonl":
        for p in live.values():
            assert b'"old"' not in p.read_bytes(), p.name
