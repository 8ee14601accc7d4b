"""AckState (a watermark plus acked ranges) against a plain-set model, and the batched saver."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orgloop.wal.acks import AckState, AckStore, _runs
from support.pipeline import wait_until

seq = st.integers(min_value=1, max_value=300)
op = st.one_of(
    st.tuples(st.just("ack"), seq),
    st.tuples(st.just("many"), st.lists(seq, max_size=80)),
    st.tuples(st.just("range"), seq, st.integers(min_value=0, max_value=120)),
    # a whole run arriving shuffled, as a router's ack tracker hands it over
    st.tuples(st.just("run"), seq, st.integers(min_value=1, max_value=200), st.randoms(use_true_random=False)),
)


def model_watermark(acked: set[int]) -> int:
    w = 0
    while w + 1 in acked:
        w += 1
    return w


def model_ranges(seqs: set[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return [(a, b) for a, b in out]


class TinyLoose(AckState):
    """Folds its loose seqs into ranges every few acks, so the fold runs in the middle of every example."""

    LOOSE_MAX = 3


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(op, st.booleans()), max_size=40), st.integers(1, 330), st.integers(0, 120),
       st.sampled_from([AckState, TinyLoose]))
def test_ranges_and_queries_match_a_plain_set(ops, qlo, qlen, kind):
    """Queries (which fold the loose seqs) come after some operations only, so saves and queries also
    meet loose seqs that were never folded."""
    state, acked = kind(), set()
    for o, check in ops:
        if o[0] == "ack":
            state.ack(o[1])
            acked.add(o[1])
        elif o[0] == "many":
            state.ack_many(o[1])
            acked.update(o[1])
        elif o[0] == "range":
            state.ack_range(o[1], o[1] + o[2])
            acked.update(range(o[1], o[1] + o[2] + 1))
        else:
            run = list(range(o[1], o[1] + o[2]))
            o[3].shuffle(run)
            state.ack_many(run)
            acked.update(run)
        w = model_watermark(acked)
        assert state.watermark == w
        if check:
            above = {s for s in acked if s > w}
            assert state.ranges() == model_ranges(above)         # disjoint, non-adjacent, sorted
            assert state.held == len(above)
    restored = AckState.from_bytes(state.to_bytes())             # a save may hold loose seqs
    assert all(state.is_acked(s) == (s in acked) for s in range(1, 520))
    assert all(restored.is_acked(s) == (s in acked) for s in range(1, 520))
    qhi = qlo + qlen
    window = set(range(qlo, qhi + 1))
    assert state.acked_in(qlo, qhi) == len(window & acked)
    assert state.unacked_in(qlo, qhi) == len(window - acked)
    assert state.unacked_runs(qlo, qhi) == model_ranges(window - acked)
    assert (restored.watermark, restored.ranges(), restored.held) == (state.watermark, state.ranges(), state.held)


def test_runs_are_the_maximal_runs_of_consecutive_seqs():
    for ordered in ([], [5], [1, 2, 3], [1, 3, 5], list(range(10, 1000)) + [1002, 1003] + list(range(2000, 2700))):
        assert list(_runs(ordered)) == model_ranges(set(ordered))


def test_a_million_acks_behind_one_gap_are_one_range_and_close_at_once():
    state = AckState()
    state.ack_many(range(2, 1_000_002))
    state.ack_range(1_000_002, 2_000_001)
    assert state.watermark == 0 and state.ranges() == [(2, 2_000_001)] and state.held == 2_000_000
    assert len(state.to_bytes()) < 100                      # what a flush writes stays tiny
    assert state.unacked_in(1, 2_000_001) == 1
    state.ack(1)
    assert state.watermark == 2_000_001 and state.ranges() == []


def test_the_saver_flushes_a_full_batch_without_waiting_for_its_timer(tmp_path):
    """The timer is an hour long: only the count threshold can trigger this flush."""
    store = AckStore(tmp_path / "cp", flush_interval=3600, flush_batch=1000)
    state = AckState()
    store.start(state)
    try:
        for s in range(2, 1001):
            state.ack(s)
            store.note()
        assert store.commits == 0
        state.ack(1001)
        store.note()
        assert wait_until(lambda: store.commits == 1)
        assert store.load().ranges() == [(2, 1001)]
    finally:
        store.close(state)


def test_the_saver_flushes_on_its_timer_without_another_ack(tmp_path):
    store = AckStore(tmp_path / "cp", flush_interval=0.05, flush_batch=1000)
    state = AckState()
    store.start(state)
    try:
        state.ack_range(1, 5)
        store.note()
        assert wait_until(lambda: store.commits == 1)              # no further call into the store was made
        assert store.load().watermark == 5
    finally:
        store.close(state)



def test_wal_ack_many_of_shuffled_runs_with_and_without_a_hole(tmp_path, impl):
    import random

    from orgloop.wal import Wal

    with Wal(tmp_path, segment_size=64 << 10, implementation=impl) as wal:
        wal.append_many([b"r"] * 40)
        run = list(range(1, 11))
        random.Random(3).shuffle(run)
        wal.ack_many(run)                                     # a whole run: the watermark moves to 10
        holed = [s for s in range(12, 31) if s != 20]
        random.Random(4).shuffle(holed)
        wal.ack_many(holed)                                   # 11 and 20 stay unacked
        unacked = [s for b in wal.replay() for s in b.seqs]
        assert unacked == [11, 20] + list(range(31, 41))
        assert wal.stats()["acked_watermark"] == 10


def test_a_saved_state_with_any_flipped_bit_is_refused_not_misread():
    """LMDB keeps no checksum of its own: a state damaged on disk must never be taken for acks (one flipped
    bit in the watermark would skip unacked events); it is rebuilt conservatively instead."""
    state = AckState()
    state.ack_many([1, 2, 3, 7, 9, 10, 400])
    state.ack_range(1000, 2000)
    raw = state.to_bytes()
    for i in range(len(raw)):
        for bit in range(8):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            try:
                AckState.from_bytes(bytes(bad))
            except (ValueError, TypeError, KeyError):
                continue
            raise AssertionError(f"byte {i} bit {bit} flipped was read as a state")


def test_a_state_saved_before_checksums_still_loads():
    import msgpack

    old = msgpack.packb({"v": 1, "watermark": 5, "above": [[7, 9]], "lost": 0, "quarantined": []})
    state = AckState.from_bytes(old)
    assert (state.watermark, state.ranges()) == (5, [(7, 9)])
