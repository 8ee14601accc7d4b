"""The EventBus contract, as a reusable test suite.

Every bus implementation (memory, filewal, and later nats/redis/kafka) subclasses :class:`BusContract`
and provides ``make_bus(self, tmp_path)`` and, for durable buses, ``reopen(self, bus, tmp_path)``.
"""
from __future__ import annotations

import threading

import pytest

from orgloop.bus import BusClosedError, EventFilter
from orgloop.event import new_event


def events(n: int, source: str = "s", type: str = "resource.changed", start: int = 0) -> list[dict]:
    return [new_event(source, type, {"n": i}) for i in range(start, start + n)]


class Collector:
    """A handler that records what it receives and can wait for a count."""

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.events: list[dict] = []
        self.cv = threading.Condition()

    def __call__(self, seqs, evs) -> None:
        with self.cv:
            self.seqs.extend(seqs)
            self.events.extend(evs)
            self.cv.notify_all()

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self.cv:
            return self.cv.wait_for(lambda: len(self.events) >= n, timeout)


class BusContract:
    durable = False

    def make_bus(self, tmp_path):
        raise NotImplementedError

    def reopen(self, bus, tmp_path):
        raise NotImplementedError

    def test_publish_returns_increasing_seqs_and_subscribers_get_everything_in_order(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            got = Collector()
            bus.subscribe(None, got)
            s1 = list(bus.publish_many(events(5)))
            s2 = bus.publish(events(1, start=5)[0])
            assert s1 == sorted(s1) and len(set(s1)) == 5 and s2 > s1[-1]
            assert got.wait_for(6)
            assert got.seqs == s1 + [s2]
            assert [e["payload"]["n"] for e in got.events] == list(range(6))

    def test_filters_select_by_source_and_type(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            gh, stopped = Collector(), Collector()
            bus.subscribe(EventFilter.of(sources=["github"]), gh)
            bus.subscribe(EventFilter.of(types=["actor.stopped"]), stopped)
            bus.publish_many(events(3, "github") + events(2, "cron", "actor.stopped") + events(1, "x"))
            assert bus.drain(10)
            assert [e["source"] for e in gh.events] == ["github"] * 3
            assert [e["type"] for e in stopped.events] == ["actor.stopped"] * 2

    def test_ack_removes_from_unacked(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            seqs = list(bus.publish_many(events(10)))
            bus.ack_many(seqs[:4])
            bus.ack(seqs[6])
            left = [s for batch_seqs, _ in bus.unacked() for s in batch_seqs]
            assert left == seqs[4:6] + seqs[7:]

    def test_concurrent_publishers_lose_nothing(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            got = Collector()
            bus.subscribe(None, got)

            def pub(k):
                for i in range(20):
                    bus.publish_many(events(5, source=f"p{k}", start=i * 5))

            threads = [threading.Thread(target=pub, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert got.wait_for(400)
            assert len(set(got.seqs)) == 400
            for k in range(4):   # per publisher, publish order is kept
                mine = [e["payload"]["n"] for e in got.events if e["source"] == f"p{k}"]
                assert mine == list(range(100))

    def test_a_failing_handler_does_not_stop_the_bus(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            calls = []

            def bad(seqs, evs):
                calls.append(len(evs))
                raise RuntimeError("boom")

            good = Collector()
            bus.subscribe(None, bad)
            bus.subscribe(None, good)
            bus.publish_many(events(3))
            bus.publish_many(events(2))
            assert good.wait_for(5) and sum(calls) == 5

    def test_closed_bus_refuses_publish(self, tmp_path):
        bus = self.make_bus(tmp_path)
        bus.close()
        with pytest.raises(BusClosedError):
            bus.publish_many(events(1))

    def test_unacked_events_are_redelivered_after_restart(self, tmp_path):
        if not self.durable:
            pytest.skip("this bus keeps nothing across restarts")
        bus = self.make_bus(tmp_path)
        seqs = list(bus.publish_many(events(10)))
        bus.ack_many(seqs[:3])
        bus.close()
        bus = self.reopen(bus, tmp_path)
        try:
            got = Collector()
            bus.subscribe(None, got)
            new = bus.publish_many(events(2, start=10))
            assert got.wait_for(9)
            assert got.seqs == seqs[3:] + list(new)
            assert [e["payload"]["n"] for e in got.events] == list(range(3, 12))
        finally:
            bus.close()
