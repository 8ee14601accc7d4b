"""Hypothesis state machine: each twin against a plain model of a bounded FIFO (no waiting)."""
from __future__ import annotations

from collections import deque
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from orgloop.queues import Empty, QueueClosed, QueueFull
from orgloop.queues.errors import POLICIES

items = st.integers(0, 1000)


class QueueModel:
    """What a bounded queue must do, written as simply as possible. Returns (result, exception)."""

    def __init__(self, maxsize: int, policy: str) -> None:
        self.maxsize, self.policy = maxsize, policy
        self.items: deque[Any] = deque()
        self.dropped = 0
        self.closed = False

    def put_many(self, xs: list[Any]) -> tuple[Any, BaseException | None]:
        if self.closed:
            return None, QueueClosed()
        if self.policy == "drop_oldest":
            before = self.dropped
            for x in xs:
                if len(self.items) == self.maxsize:
                    self.items.popleft()
                    self.dropped += 1
                self.items.append(x)
            return self.dropped - before, None
        room = self.maxsize - len(self.items)
        self.items.extend(xs[:room])
        if len(xs) > room:
            return None, QueueFull(self.maxsize, room)
        return 0, None

    def get_many(self, k: int) -> tuple[Any, BaseException | None]:
        if not self.items:
            return [], (QueueClosed() if self.closed else None)
        return [self.items.popleft() for _ in range(min(k, len(self.items)))], None


class QueueMachine(RuleBasedStateMachine):
    impl: ModuleType  # set per twin by the test below

    @initialize(maxsize=st.integers(1, 6), policy=st.sampled_from(POLICIES))
    def make(self, maxsize: int, policy: str) -> None:
        self.q = self.impl.BoundedQueue(maxsize, policy)
        self.model = QueueModel(maxsize, policy)

    def _same(self, call: Any, expected: tuple[Any, BaseException | None]) -> Any:
        result, error = expected
        if error is None:
            assert call() == result
            return
        with pytest.raises(type(error)) as info:
            call()
        assert str(info.value) == str(error)
        assert getattr(info.value, "accepted", 0) == getattr(error, "accepted", 0)

    @rule(x=items)
    def put(self, x: int) -> None:
        self._same(lambda: self.q.put(x, timeout=0), self.model.put_many([x]))

    @rule(xs=st.lists(items, max_size=10))
    def put_many(self, xs: list[int]) -> None:
        self._same(lambda: self.q.put_many(xs, timeout=0), self.model.put_many(xs))

    @rule()
    def get(self) -> None:
        result, error = self.model.get_many(1)
        if error is None and not result:
            error = Empty()
        self._same(lambda: self.q.get(timeout=0), (result[0] if result else None, error))

    @rule(k=st.integers(1, 8))
    def get_many(self, k: int) -> None:
        self._same(lambda: self.q.get_many(k, timeout=0), self.model.get_many(k))

    @rule()
    def close(self) -> None:
        self.q.close()
        self.model.closed = True

    @invariant()
    def counters_match(self) -> None:
        if hasattr(self, "q"):
            assert (len(self.q), self.q.dropped, self.q.closed) == (
                len(self.model.items), self.model.dropped, self.model.closed)
            assert 0 <= len(self.q) <= self.q.maxsize


def test_queue_matches_model(impl: ModuleType) -> None:
    machine = type(f"QueueMachine_{impl.__name__}", (QueueMachine,), {"impl": impl})
    run_state_machine_as_test(machine, settings=settings(max_examples=150, stateful_step_count=40, deadline=None))
