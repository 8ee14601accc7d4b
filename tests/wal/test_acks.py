"""AckState against a plain-set model: acks in any order, batches, ranges, duplicates and re-acks."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from orgloop.wal.acks import AckState

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


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_watermark_and_held_seqs_match_the_model(ops):
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
        assert state.watermark == w
        assert state.above == {s for s in acked if s > w}
        assert all(state.is_acked(s) == (s in acked) for s in range(1, 320))
    restored = AckState.from_bytes(state.to_bytes())
    assert (restored.watermark, restored.above) == (state.watermark, state.above)


def test_a_long_run_behind_one_gap_moves_the_watermark_at_once():
    state = AckState()
    state.ack_many(range(2, 100_002))
    assert state.watermark == 0 and len(state.above) == 100_000
    state.ack(1)
    assert state.watermark == 100_001 and not state.above
