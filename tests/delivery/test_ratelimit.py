from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from orgloop.delivery import TokenBucket
from orgloop.units import UnitError

from support.fakeclock import FakeClock


def test_starts_full_then_refills_at_the_rate(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=10, burst=3, clock=clock)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.delay_for() == pytest.approx(0.1)
    clock.advance(0.05)
    assert not bucket.try_acquire()
    assert bucket.delay_for() == pytest.approx(0.05)
    clock.advance(0.05)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_never_holds_more_than_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=100, burst=5, clock=clock)
    clock.advance(3600)
    assert bucket.tokens == 5
    assert bucket.acquire_up_to(50) == 5
    assert bucket.acquire_up_to(50) == 0


def test_default_burst_is_one_second_and_at_least_one(clock: FakeClock) -> None:
    assert TokenBucket(100, clock=clock).burst == 100
    assert TokenBucket(0.2, clock=clock).burst == 1


def test_from_spec_parses_project_rates(clock: FakeClock) -> None:
    bucket = TokenBucket.from_spec("10/min", clock=clock)
    assert bucket.rate == pytest.approx(10 / 60)
    assert bucket.try_acquire() and not bucket.try_acquire()
    assert bucket.delay_for() == pytest.approx(6.0)
    with pytest.raises(UnitError, match="invalid rate"):
        TokenBucket.from_spec("fast")


def test_delay_for_many_tokens_and_partial_batches(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=4, burst=8, clock=clock)
    assert bucket.acquire_up_to(6) == 6
    assert bucket.delay_for(8) == pytest.approx(1.5)
    assert bucket.delay_for(2) == 0.0
    assert not bucket.try_acquire(3)
    assert bucket.try_acquire(2)
    assert bucket.acquire_up_to(0) == 0


def test_a_clock_stepping_back_grants_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=1, burst=1, clock=clock)
    assert bucket.try_acquire()
    clock.advance(-100)
    clock.advance(0.5)
    assert not bucket.try_acquire()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rate_per_s": 0}, ValueError, "rate_per_s must be a finite number greater than 0, not 0"),
    ({"rate_per_s": float("inf")}, ValueError, "rate_per_s must be a finite number"),
    ({"rate_per_s": "100/s"}, TypeError, "rate_per_s must be a number, not str"),
    ({"rate_per_s": 1, "burst": 0.5}, ValueError, "burst must be a finite number at least 1, not 0.5"),
])
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        TokenBucket(**kwargs)


def test_asking_for_more_than_burst_is_an_error(clock: FakeClock) -> None:
    bucket = TokenBucket(rate_per_s=1, burst=2, clock=clock)
    with pytest.raises(ValueError, match="cannot take 3 tokens at once from a bucket whose burst is 2"):
        bucket.try_acquire(3)
    with pytest.raises(ValueError, match="n must be a finite number greater than 0"):
        bucket.delay_for(0)
    with pytest.raises(ValueError, match="non-negative int"):
        bucket.acquire_up_to(-1)


ops = st.lists(st.tuples(st.floats(0, 2, allow_nan=False), st.sampled_from(["one", "many", "batch"]),
                         st.integers(1, 5)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(rate=st.floats(0.1, 1000), burst=st.floats(1, 50), steps=ops)
def test_never_grants_more_than_rate_times_time_plus_burst(rate: float, burst: float, steps) -> None:
    """In every window [t1, t2], at most rate * (t2 - t1) + burst tokens are granted."""
    clock = FakeClock(0.0)
    bucket = TokenBucket(rate, burst, clock=clock)
    grants: list[tuple[float, int]] = []
    for dt, kind, n in steps:
        clock.advance(dt)
        n = min(n, int(burst))
        if kind == "one":
            got = n if bucket.try_acquire(n) else 0
        elif kind == "many":
            got = bucket.acquire_up_to(n)
        else:
            clock.advance(bucket.delay_for(n))
            assert bucket.try_acquire(n), "waiting the advertised delay must be enough"
            got = n
        if got:
            grants.append((clock.now, got))
    for i, (start, _) in enumerate(grants):
        total = 0
        for end, got in grants[i:]:
            total += got
            assert total <= rate * (end - start) + burst + 1e-6 * len(grants)
