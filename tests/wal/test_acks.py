"""AckState (a watermark plus acked ranges) against a plain-set model, and the batched saver."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orgloop.wal.acks import AckState, AckStore
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


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40), st.integers(1, 330), st.integers(0, 120))
def test_ranges_and_queries_match_a_plain_set(ops, qlo, qlen):
    state, acked = AckState(), set()
    for o in ops:
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
        above = {s for s in acked if s > w}
        assert state.watermark == w
        assert state.ranges() == model_ranges(above)         # disjoint, non-adjacent, sorted
        assert state.held == len(above)
    assert all(state.is_acked(s) == (s in acked) for s in range(1, 520))
    qhi = qlo + qlen
    window = set(range(qlo, qhi + 1))
    assert state.acked_in(qlo, qhi) == len(window & acked)
    assert state.unacked_in(qlo, qhi) == len(window - acked)
    assert state.unacked_runs(qlo, qhi) == model_ranges(window - acked)
    restored = AckState.from_bytes(state.to_bytes())
    assert (restored.watermark, restored.ranges(), restored.held) == (state.watermark, state.ranges(), state.held)


def test_ack_many_of_a_shuffled_run_with_one_hole_keeps_the_hole():
    for hole in (2, 5, 9):
        state = AckState()
        seqs = [s for s in range(1, 11) if s != hole]
        state.ack_many(reversed(seqs))
        assert (state.watermark, state.ranges()) == (hole - 1, [(hole + 1, 10)])
    state = AckState()
    state.ack_many([7, 5, 4, 8, 6])                            # a hole-free run above the watermark
    assert (state.watermark, state.ranges(), state.held) == (0, [(4, 8)], 5)


def test_a_million_acks_behind_one_gap_are_one_range_and_close_at_once():
    state = AckState()
    state.ack_many(range(2, 1_000_002))
    state.ack_range(1_000_002, 2_000_001)
    assert state.watermark == 0 and state.ranges() == [(2, 2_000_001)] and state.held == 2_000_000
    assert len(state.to_bytes()) < 64                       # what a flush writes stays tiny
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

