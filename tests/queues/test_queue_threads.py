"""Many producers and consumers at once: nothing lost, nothing duplicated, FIFO per producer.

Small queues and tiny timeouts force every waiting path (and the timeout-versus-wakeup races)
to run thousands of times. Every thread is joined with a bound, so a lost wakeup fails the test
instead of hanging the run.
"""
from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from types import ModuleType

import pytest

from orgloop.queues import Empty, QueueClosed, QueueFull

PRODUCERS, CONSUMERS, PER_PRODUCER = 3, 3, 3000
JOIN_S = 30.0


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    """Switch threads every few microseconds instead of every 5 ms, so the races actually happen."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def _producer(q, pid: int, seed: int, blocking: bool) -> None:
    rng = random.Random(seed)
    mine = [(pid, i) for i in range(PER_PRODUCER)]
    while mine:
        n = rng.choice([1, 1, 2, 7, 20])
        batch, mine = mine[:n], mine[n:]
        while batch:
            try:
                if len(batch) == 1:
                    q.put(batch[0], timeout=rng.choice([None, 0.0005]))
                else:
                    q.put_many(batch, timeout=rng.choice([None, 0.0005]))
                batch = []
            except QueueFull as exc:
                assert blocking
                batch = batch[exc.accepted:]


def _consumer(q, seed: int, out: list) -> None:
    rng = random.Random(seed)
    while True:
        try:
            if rng.random() < 0.5:
                out.append(q.get(timeout=rng.choice([None, 0.0005])))
            else:
                out.extend(q.get_many(rng.choice([1, 5, 50]), timeout=rng.choice([None, 0.0005])))
        except Empty:
            continue
        except QueueClosed:
            return


def _run(q) -> list[list]:
    received: list[list] = [[] for _ in range(CONSUMERS)]
    blocking = q.policy == "block"
    producers = [threading.Thread(target=_producer, args=(q, p, p, blocking), daemon=True) for p in range(PRODUCERS)]
    consumers = [threading.Thread(target=_consumer, args=(q, 100 + c, received[c]), daemon=True) for c in range(CONSUMERS)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join(JOIN_S)
    q.close()
    for t in consumers:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in producers + consumers), "a thread hung: lost wakeup?"
    return received


def _assert_fifo_per_producer(received: list[list]) -> None:
    for got in received:
        last: dict[int, int] = {}
        for pid, i in got:
            assert i > last.get(pid, -1), "items of one producer arrived out of order"
            last[pid] = i


@pytest.mark.parametrize("maxsize", [1, 8])
def test_block_mode_loses_and_duplicates_nothing(impl: ModuleType, maxsize: int) -> None:
    q = impl.BoundedQueue(maxsize, "block")
    received = _run(q)
    everything = Counter(item for got in received for item in got)
    assert everything == Counter((p, i) for p in range(PRODUCERS) for i in range(PER_PRODUCER))
    assert q.dropped == 0
    _assert_fifo_per_producer(received)


def test_drop_oldest_accounts_for_every_item(impl: ModuleType) -> None:
    q = impl.BoundedQueue(8, "drop_oldest")
    received = _run(q)
    everything = Counter(item for got in received for item in got)
    assert max(everything.values()) == 1, "an item was delivered twice"
    assert set(everything) <= {(p, i) for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    assert len(everything) + q.dropped == PRODUCERS * PER_PRODUCER
    _assert_fifo_per_producer(received)
