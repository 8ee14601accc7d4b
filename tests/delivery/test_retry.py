from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from orgloop.delivery import BACKOFFS, RetryPolicy


@pytest.mark.parametrize(("backoff", "expected"), [
    ("exponential", [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]),
    ("linear", [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
    ("fixed", [0.5] * 6),
])
def test_backoff_shapes_without_jitter(backoff: str, expected: list[float]) -> None:
    policy = RetryPolicy(max_attempts=10, backoff=backoff, initial_delay=0.5, max_delay=5.0, jitter=0)
    assert [policy.delay(a) for a in range(1, 7)] == expected


def test_attempts_are_capped_and_count_the_first_delivery() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.should_retry(a) for a in (1, 2, 3, 4)] == [True, True, False, False]
    assert not RetryPolicy(max_attempts=1).should_retry(1)


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    policy = RetryPolicy(initial_delay=10, max_delay=10, jitter=0.25, rng=random.Random(7))
    delays = [policy.delay(1) for _ in range(2000)]
    assert all(7.5 <= d <= 10.0 for d in delays)
    assert min(delays) < 7.6 and max(delays) > 9.9  # the whole band is used


def test_full_jitter_spans_zero_to_base() -> None:
    policy = RetryPolicy(initial_delay=4, max_delay=4, jitter=1.0, rng=random.Random(3))
    delays = [policy.delay(3) for _ in range(2000)]
    assert all(0.0 <= d <= 4.0 for d in delays) and min(delays) < 0.1


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert RetryPolicy(max_delay=60, jitter=0).delay(100_000) == 60.0


def test_from_spec_parses_durations() -> None:
    policy = RetryPolicy.from_spec({"max_attempts": 5, "backoff": "linear", "initial_delay": "250ms",
                                    "max_delay": "2m", "max_retry_after": "10m"})
    assert (policy.max_attempts, policy.backoff, policy.initial_delay, policy.max_delay, policy.max_retry_after) \
        == (5, "linear", 0.25, 120.0, 600.0)
    assert RetryPolicy.from_spec({}).max_retry_after == 300.0
    with pytest.raises(ValueError, match="unknown retry setting\\(s\\) 'retries'"):
        RetryPolicy.from_spec({"retries": 3})
    with pytest.raises(ValueError, match="invalid duration"):
        RetryPolicy.from_spec({"initial_delay": "1 second"})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_attempts": 0}, "max_attempts must be at least 1, not 0"),
    ({"backoff": "random"}, "backoff must be one of exponential, linear, fixed; got 'random'"),
    ({"initial_delay": -1}, "initial_delay must be a finite number at least 0, not -1"),
    ({"jitter": 1.5}, "jitter must be a finite number at least 0 and at most 1, not 1.5"),
    ({"max_retry_after": float("inf")}, "max_retry_after must be a finite number at least 0, not inf"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        RetryPolicy(**kwargs)
    assert str(info.value) == message


def test_retry_after_is_honoured_up_to_max_retry_after_and_never_shortens_the_backoff() -> None:
    policy = RetryPolicy(initial_delay=2.0, max_delay=8.0, jitter=0, max_retry_after=30.0)
    asked = (None, 0.5, 7.0, 30.0, 86400.0, float("nan"))
    assert [policy.wait(1, r) for r in asked] == [2.0, 2.0, 7.0, 30.0, 30.0, 2.0]
    assert RetryPolicy(initial_delay=60.0, jitter=0, max_retry_after=5.0).wait(1, 86400.0) == 60.0
    assert RetryPolicy(initial_delay=1.0, jitter=0, max_retry_after=0).wait(1, 86400.0) == 1.0   # 0: ignore it


def test_attempt_must_be_positive() -> None:
    with pytest.raises(ValueError, match="attempt must be at least 1, not 0"):
        RetryPolicy().delay(0)


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    backoff=st.sampled_from(BACKOFFS),
    initial_delay=st.floats(0, 100),
    max_delay=st.floats(0, 1000),
    jitter=st.floats(0, 1),
    rng=st.randoms(use_true_random=False),
)


@given(policy=policies, attempts=st.lists(st.integers(1, 2000), min_size=1, max_size=20))
def test_delays_are_bounded_by_max_delay_and_base(policy: RetryPolicy, attempts: list[int]) -> None:
    for a in attempts:
        base = policy.base_delay(a)
        d = policy.delay(a)
        assert 0.0 <= d <= base <= policy.max_delay
        assert d >= base * (1 - policy.jitter) - 1e-12


@given(policy=policies)
def test_base_delay_never_decreases(policy: RetryPolicy) -> None:
    delays = [policy.base_delay(a) for a in range(1, 80)]
    assert delays == sorted(delays)


@given(policy=policies)
def test_retries_stop_after_max_attempts(policy: RetryPolicy) -> None:
    attempt = 1
    while policy.should_retry(attempt):
        attempt += 1
        assert attempt <= 1000
    assert attempt == policy.max_attempts
