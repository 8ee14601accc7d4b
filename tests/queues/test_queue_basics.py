"""The BoundedQueue contract, on both twins."""
from __future__ import annotations

import gc
import queue
import signal
import threading
from types import ModuleType

import pytest

from orgloop.queues import Empty, QueueClosed, QueueFull, twins

JOIN_S = 10.0  # generous bound on thread joins; a hang fails the test instead of the run


def test_fifo_order_and_len(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=5)
    assert q.put("a") == 0 and q.put_many(["b", "c"]) == 0
    assert len(q) == 3
    assert q.get() == "a"
    assert q.get_many(10) == ["b", "c"]
    assert len(q) == 0 and q.dropped == 0


def test_defaults_and_properties(impl: ModuleType) -> None:
    q = impl.BoundedQueue()
    assert (q.maxsize, q.policy, q.dropped, q.closed) == (1000, "drop_oldest", 0, False)
    assert "maxsize=1000" in repr(q)


def test_ring_wraps_around_many_times(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=3, policy="block")
    out = []
    for i in range(20):
        q.put_many([2 * i, 2 * i + 1])
        out.append(q.get())
        out.extend(q.get_many(1))
    assert out == list(range(40))


def test_drop_oldest_evicts_and_counts(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=3)
    assert q.put_many([1, 2, 3]) == 0
    assert q.put(4) == 1
    assert q.put_many([5, 6]) == 2
    assert q.get_many(10) == [4, 5, 6]
    assert q.dropped == 3


def test_put_many_larger_than_maxsize_keeps_the_newest(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=3)
    q.put("old")
    assert q.put_many(range(10)) == 8  # "old" plus 0..6
    assert q.get_many(10) == [7, 8, 9]
    assert q.dropped == 8


def test_put_many_accepts_any_iterable(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=10)
    q.put_many(x * x for x in range(4))
    q.put_many((9, 10))
    assert q.get_many(10) == [0, 1, 4, 9, 9, 10]


def test_get_times_out_with_empty(impl: ModuleType) -> None:
    q = impl.BoundedQueue()
    with pytest.raises(Empty, match="no item arrived"):
        q.get(timeout=0)
    with pytest.raises(queue.Empty):  # familiar to users of the stdlib queue
        q.get(timeout=0.001)


def test_get_many_returns_empty_list_on_timeout(impl: ModuleType) -> None:
    q = impl.BoundedQueue()
    assert q.get_many(5, timeout=0) == []
    assert q.get_many(5, timeout=0.001) == []


def test_block_put_times_out_with_queue_full(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=2, policy="block")
    q.put_many([1, 2])
    with pytest.raises(QueueFull, match=r"full \(2 items\)") as info:
        q.put(3, timeout=0)
    assert info.value.accepted == 0
    assert isinstance(info.value, queue.Full)
    assert q.get_many(10) == [1, 2] and q.dropped == 0


def test_block_put_many_reports_how_many_got_in(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=3, policy="block")
    q.put("x")
    with pytest.raises(QueueFull) as info:
        q.put_many([1, 2, 3, 4], timeout=0.001)
    assert info.value.accepted == 2
    assert q.get_many(10) == ["x", 1, 2]


def test_blocked_put_resumes_when_a_get_makes_room(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=2, policy="block")
    q.put_many([0, 1])
    done = threading.Event()

    def producer() -> None:
        q.put_many([2, 3, 4, 5])
        done.set()

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    got = [q.get(timeout=JOIN_S) for _ in range(6)]
    t.join(JOIN_S)
    assert done.is_set() and got == [0, 1, 2, 3, 4, 5]


def test_blocked_get_wakes_on_put(impl: ModuleType) -> None:
    q = impl.BoundedQueue()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=JOIN_S)), daemon=True)
    t.start()
    q.put("hello")
    t.join(JOIN_S)
    assert got == ["hello"]


@pytest.mark.parametrize("op", ["get", "put"])
def test_huge_timeouts_and_batch_sizes_are_accepted(impl: ModuleType, op: str) -> None:
    q = impl.BoundedQueue(maxsize=1, policy="block")
    done: list[object] = []
    if op == "get":
        t = threading.Thread(target=lambda: done.append(q.get_many(10**30, timeout=1e300)), daemon=True)
    else:
        q.put("first")
        t = threading.Thread(target=lambda: done.append(q.put("second", timeout=1e300)), daemon=True)
    t.start()
    if op == "get":
        q.put("item")
    else:
        assert q.get(timeout=JOIN_S) == "first"
    t.join(JOIN_S)
    assert done == ([["item"]] if op == "get" else [0])


def test_get_many_takes_what_is_there_without_waiting_for_more(impl: ModuleType) -> None:
    q = impl.BoundedQueue()
    q.put_many([1, 2])
    assert q.get_many(5, timeout=JOIN_S) == [1, 2]
    q.put_many(range(10))
    assert q.get_many(3) == [0, 1, 2]
    assert len(q) == 7


def test_close_refuses_puts_and_drains_gets(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=4)
    q.put_many([1, 2, 3])
    q.close()
    assert q.closed
    with pytest.raises(QueueClosed, match="the queue is closed"):
        q.put(4)
    with pytest.raises(QueueClosed):
        q.put_many([])
    assert q.get() == 1
    assert q.get_many(10, timeout=0) == [2, 3]
    with pytest.raises(QueueClosed):
        q.get(timeout=0)
    with pytest.raises(QueueClosed):
        q.get_many(1)
    q.close()  # idempotent


@pytest.mark.parametrize("op", ["get", "get_many"])
def test_close_wakes_a_blocked_getter(impl: ModuleType, op: str) -> None:
    q = impl.BoundedQueue()
    errors: list[BaseException] = []
    started = threading.Event()

    def consumer() -> None:
        started.set()
        try:
            q.get() if op == "get" else q.get_many(10)
        except QueueClosed as exc:
            errors.append(exc)

    t = threading.Thread(target=consumer, daemon=True)
    t.start()
    started.wait(JOIN_S)
    q.close()
    t.join(JOIN_S)
    assert not t.is_alive() and len(errors) == 1


def test_close_wakes_a_blocked_putter_and_says_what_got_in(impl: ModuleType) -> None:
    q = impl.BoundedQueue(maxsize=2, policy="block")
    errors: list[QueueClosed] = []

    def producer() -> None:
        try:
            q.put_many([1, 2, 3, 4])
        except QueueClosed as exc:
            errors.append(exc)

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    while len(q) < 2:  # wait until the producer filled the queue (bounded by the join below)
        t.join(0.001)
    q.close()
    t.join(JOIN_S)
    assert not t.is_alive()
    assert [e.accepted for e in errors] == [2]
    assert "2 item(s) of this call were queued first" in str(errors[0])
    assert q.get_many(10) == [1, 2]


class _Reporter:
    """An item whose finaliser looks at the queue: it must never see a half-done put."""

    seen: list[tuple[int, int]] = []

    def __init__(self, q: object) -> None:
        self.q = q

    def __del__(self) -> None:
        _Reporter.seen.append((len(self.q), self.q.dropped))  # type: ignore[arg-type,attr-defined]


@pytest.mark.parametrize("batch", [False, True])
def test_evicted_items_die_after_the_put_is_complete(impl: ModuleType, batch: bool) -> None:
    gc.collect()            # an earlier case's reporters may still sit in a reference cycle with their queue
    q = impl.BoundedQueue(maxsize=2)
    _Reporter.seen = []
    q.put_many([_Reporter(q), _Reporter(q)])
    if batch:
        assert q.put_many(["a", "b"]) == 2
    else:
        assert q.put("a") == 1
    expected = [(2, 2), (2, 2)] if batch else [(2, 1)]
    assert _Reporter.seen == expected


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"maxsize": 0}, ValueError, "maxsize must be at least 1, not 0"),
    ({"maxsize": 2.5}, TypeError, "maxsize must be an int, not float"),
    ({"maxsize": True}, TypeError, "maxsize must be an int, not bool"),
    ({"policy": "drop-newest"}, ValueError, "policy must be one of drop_oldest, block; got 'drop-newest'"),
])
def test_bad_constructor_arguments(impl: ModuleType, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        impl.BoundedQueue(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda q: q.get(timeout=-1), ValueError, "timeout must be a non-negative number of seconds or None, not -1"),
    (lambda q: q.put(1, timeout=float("nan")), ValueError,
     "timeout must be a non-negative number of seconds or None, not nan"),
    (lambda q: q.put_many([1], timeout="1s"), TypeError, "timeout must be a number of seconds or None, not str"),
    (lambda q: q.get_many(0), ValueError, "max_items must be at least 1, not 0"),
    (lambda q: q.get_many(None), TypeError, "max_items must be an int, not NoneType"),
])
def test_bad_call_arguments(impl: ModuleType, call, error: type, message: str) -> None:
    q = impl.BoundedQueue()
    q.put(1)
    with pytest.raises(error) as info:
        call(q)
    assert str(info.value) == message
    assert len(q) == 1  # a rejected call changes nothing


def test_both_twins_expose_the_same_public_names() -> None:
    if twins.compiled is None:
        pytest.skip("compiled queue not built")

    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")} | {"__len__"}

    assert public(twins.compiled.BoundedQueue) == public(twins.pure.BoundedQueue)


class _Interrupted(Exception):
    pass


def test_a_signal_handler_can_interrupt_a_blocked_get(impl: ModuleType) -> None:
    """Ctrl-C must reach a consumer blocked in ``get``; the queue stays usable afterwards."""
    q = impl.BoundedQueue()
    calls: list[int] = []

    def handler(signum: int, frame: object) -> None:
        calls.append(signum)
        if len(calls) == 2:
            raise _Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)  # first signal is ignored, second raises
        with pytest.raises(_Interrupted):
            q.get(timeout=JOIN_S)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(calls) == 2
    q.put("after")
    assert q.get(timeout=0) == "after"


def test_put_many_evicting_returns_the_dropped_items_oldest_first(impl: ModuleType) -> None:
    q = impl.BoundedQueue(3)
    assert q.put_many_evicting([1, 2]) == []
    assert q.put_many_evicting([3, 4, 5]) == [1, 2]
    assert q.put_many_evicting([6, 7, 8, 9, 10]) == [3, 4, 5, 6, 7]   # oldest queued, then the batch's head
    assert q.get_many(10) == [8, 9, 10] and q.dropped == 7
    blocking = impl.BoundedQueue(2, "block")
    assert blocking.put_many_evicting([1, 2]) == [] and len(blocking) == 2
