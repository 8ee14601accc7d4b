from __future__ import annotations

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orgloop.delivery import BreakerState, CircuitBreaker

from support.fakeclock import FakeClock

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def _breaker(clock: FakeClock, threshold: int = 3, cooldown: float = 30.0):
    changes: list[tuple[str, str]] = []
    b = CircuitBreaker(threshold, cooldown, clock=clock, on_change=lambda old, new: changes.append((old, new)))
    return b, changes


def test_opens_after_consecutive_failures_only(clock: FakeClock) -> None:
    b, changes = _breaker(clock)
    for outcome in ("fail", "fail", "ok", "fail", "fail"):  # the success resets the count
        b.record_failure() if outcome == "fail" else b.record_success()
    assert b.state == CLOSED and b.failures == 2 and b.allow()
    b.record_failure()
    assert b.state == OPEN and changes == [(CLOSED, OPEN)]
    assert not b.allow()


def test_half_open_lets_exactly_one_probe_through(clock: FakeClock) -> None:
    b, changes = _breaker(clock, threshold=1, cooldown=30)
    b.record_failure()
    clock.advance(29.999)
    assert not b.allow() and b.cooldown_remaining() == pytest.approx(0.001)
    clock.advance(0.001)
    assert b.allow()
    assert [b.allow() for _ in range(5)] == [False] * 5
    assert b.state == HALF_OPEN and b.cooldown_remaining() == 0.0
    b.record_success()
    assert b.state == CLOSED and b.allow()
    assert changes == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_failed_probe_reopens_with_a_fresh_cooldown(clock: FakeClock) -> None:
    b, changes = _breaker(clock, threshold=2, cooldown=10)
    b.record_failure()
    b.record_failure()
    clock.advance(15)
    assert b.allow()
    b.record_failure()
    assert b.state == OPEN
    clock.advance(9)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()
    assert changes[-3:] == [(OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (OPEN, HALF_OPEN)]


def test_late_outcomes_while_open_are_ignored(clock: FakeClock) -> None:
    b, _ = _breaker(clock, threshold=1, cooldown=10)
    b.record_failure()
    b.record_success()
    b.record_failure()
    clock.advance(10)
    assert b.state == OPEN and b.allow()  # the late failure did not restart the cooldown


def test_on_change_may_read_the_breaker(clock: FakeClock) -> None:
    seen: list[str] = []
    b = CircuitBreaker(1, 0, clock=clock, on_change=lambda old, new: seen.append(f"{old}->{new}:{b.state}"))
    b.record_failure()
    b.allow()
    assert seen == ["closed->open:open", "open->half_open:half_open"]


def test_from_spec_and_bad_arguments(clock: FakeClock) -> None:
    b = CircuitBreaker.from_spec({"failure_threshold": 2, "cooldown": "1m"}, clock=clock)
    assert (b.failure_threshold, b.cooldown) == (2, 60.0)
    with pytest.raises(ValueError, match="failure_threshold must be at least 1, not 0"):
        CircuitBreaker(0)
    with pytest.raises(ValueError, match="cooldown must be a finite number at least 0, not -5"):
        CircuitBreaker(cooldown=-5)
    with pytest.raises(ValueError, match="unknown circuit_breaker setting"):
        CircuitBreaker.from_spec({"threshold": 2})


class BreakerMachine(RuleBasedStateMachine):
    """Drive a breaker the way delivery workers do, with several calls in flight at once."""

    @initialize(threshold=st.integers(1, 4), cooldown=st.sampled_from([0.0, 1.0, 5.0]))
    def make(self, threshold: int, cooldown: float) -> None:
        self.clock = FakeClock(0.0)
        self.threshold, self.cooldown = threshold, cooldown
        self.changes: list[tuple[BreakerState, BreakerState]] = []
        self.b = CircuitBreaker(threshold, cooldown, clock=self.clock,
                                on_change=lambda old, new: self.changes.append((old, new)))
        self.in_flight = 0          # calls allowed and not yet recorded
        self.probes_granted = 0     # allows granted since the breaker last entered half_open
        self.opened_at = 0.0
        self.consecutive = 0        # failures recorded while closed, since the last success

    @rule(dt=st.sampled_from([0.0, 0.4, 1.0, 3.0, 10.0]))
    def tick(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule()
    def allow(self) -> None:
        before = self.b.state
        allowed = self.b.allow()
        if before == CLOSED:
            assert allowed
        elif before == OPEN:
            assert allowed == (self.clock.now >= self.opened_at + self.cooldown)
            if allowed:
                self.probes_granted = 0
        if allowed:
            self.in_flight += 1
            if self.b.state == HALF_OPEN:
                self.probes_granted += 1

    @precondition(lambda self: self.in_flight > 0)
    @rule(ok=st.booleans())
    def finish_call(self, ok: bool) -> None:
        self.in_flight -= 1
        before = self.b.state
        if ok:
            self.b.record_success()
            self.consecutive = 0
            assert self.b.state == (CLOSED if before == HALF_OPEN else before)
        else:
            self.b.record_failure()
            if before == CLOSED:
                self.consecutive += 1
                expect_open = self.consecutive >= self.threshold
                assert self.b.state == (OPEN if expect_open else CLOSED)
            else:
                assert self.b.state == OPEN
            if self.b.state == OPEN and before != OPEN:
                self.opened_at = self.clock.now
                self.consecutive = 0

    @invariant()
    def single_probe(self) -> None:
        if self.b.state == HALF_OPEN:
            assert self.probes_granted == 1

    @invariant()
    def changes_form_a_legal_chain(self) -> None:
        legal = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)}
        assert all(c in legal for c in self.changes)
        assert all(a[1] == b[0] for a, b in zip(self.changes, self.changes[1:]))
        assert (self.changes[-1][1] if self.changes else CLOSED) == self.b.state

    @invariant()
    def failures_below_threshold_while_closed(self) -> None:
        if self.b.state == CLOSED:
            assert self.b.failures == self.consecutive < self.threshold


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50, deadline=None)
TestBreakerStateMachine = BreakerMachine.TestCase
