"""The EventBus contract, as a reusable test suite.

Every bus implementation (memory, filewal, and later nats/redis/kafka) subclasses :class:`BusContract`
and provides ``make_bus(self, tmp_path)`` and, for durable buses, ``reopen(self, bus, tmp_path)``.
"""
from __future__ import annotations

import threading
import time

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
    #: False where the server keeps one position per partition (Kafka): an ack above the lowest unacked
    #: event is forgotten at a restart, and that event is delivered again (at-least-once).
    acks_kept_across_restart = True

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
            if self.acks_kept_across_restart:
                assert got.wait_for(9)
                assert got.seqs == seqs[3:] + list(new)
                assert [e["payload"]["n"] for e in got.events] == list(range(3, 12))
            else:     # the acks of events never fetched were not committed: they come again
                assert got.wait_for(12)
                assert [e["payload"]["n"] for e in got.events] == list(range(12))
        finally:
            bus.close()

    # -- pull with credit (decisions.md "The bus seam")
    def test_fetch_pulls_in_order_up_to_max_with_the_ref_in_the_envelope(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            refs = list(bus.publish_many(events(7)))
            got_refs, got = bus.fetch(3, timeout=5)
            assert list(got_refs) == refs[:3] and len(got) == 3
            assert [e[bus.ref_field] for e in got] == refs[:3]
            more_refs, more = bus.fetch(100, timeout=5)
            assert list(more_refs) == refs[3:] and [e["payload"]["n"] for e in more] == [3, 4, 5, 6]
            assert bus.fetch(100, timeout=0.05) == ([], [])    # nothing new: empty after the timeout

    def test_fetch_waits_for_a_publish_within_its_timeout(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            publisher = threading.Timer(0.1, lambda: bus.publish_many(events(2)))
            publisher.start()
            refs, got = bus.fetch(10, timeout=10)
            publisher.join()              # a remote bus may still be reading the publish's reply
            assert len(got) >= 1

    def test_publishing_strips_the_envelope_ref_fields(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            ev = events(1)[0]
            ev["seq"], ev["bus_ref"] = 12345, "elsewhere-1"      # e.g. a follow-up copied from a delivered event
            (ref,) = bus.publish_many([ev])
            _refs, (got,) = bus.fetch(1, timeout=5)
            assert got[bus.ref_field] == ref and got.get("seq", ref) == ref
            assert "bus_ref" not in got or got["bus_ref"] == ref

    def test_dispatch_hands_over_no_more_than_the_subscribers_credit(self, tmp_path):
        with self.make_bus(tmp_path) as bus:
            room = [0]
            got = Collector()

            def take(refs, evs):
                room[0] -= len(evs)
                got(refs, evs)

            bus.subscribe(None, take, credit=lambda: room[0])
            bus.publish_many(events(50))
            time.sleep(0.2)
            assert got.events == []                  # no credit: everything waits in the bus
            room[0] = 20
            bus.credit_available()
            assert got.wait_for(20)
            time.sleep(0.2)
            assert len(got.events) == 20             # never more than granted
            room[0] = 1000
            bus.credit_available()
            assert got.wait_for(50)
            assert [e["payload"]["n"] for e in got.events] == list(range(50))

    def test_unacked_fetched_events_come_back_first_after_restart(self, tmp_path):
        if not self.durable:
            pytest.skip("this bus keeps nothing across restarts")
        bus = self.make_bus(tmp_path)
        refs = list(bus.publish_many(events(6)))
        fetched_refs, _ = bus.fetch(4, timeout=5)
        bus.ack_many([fetched_refs[0], fetched_refs[2]])     # acked out of order; 1 and 3 were never acked
        bus.close()
        bus = self.reopen(bus, tmp_path)
        try:
            got_refs, got = bus.fetch(100, timeout=5)
            if self.acks_kept_across_restart:
                assert [e["payload"]["n"] for e in got] == [1, 3, 4, 5]
                assert list(got_refs) == [refs[1], refs[3], refs[4], refs[5]]
            else:     # one committed position per partition: acks above it are lost, never the unacked
                assert [e["payload"]["n"] for e in got] == [1, 2, 3, 4, 5]
        finally:
            bus.close()


def check_a_server_restart_loses_nothing(bus, server, *, in_order: bool) -> None:
    """Publish 100, take and ack 50, stop the server, publish 50 more while it is down (the publish waits
    and ``problems()`` reports the outage), start it again: the 100 unacked events all come back, the
    outage clears. ``in_order``: the bus also keeps their order across the restart. Closes ``bus``."""
    import time

    try:
        bus.publish_many(events(100))
        refs, _got = bus.fetch(50, timeout=2)
        bus.ack_many(refs)
        server.stop()
        done: list[object] = []
        publisher = threading.Thread(target=lambda: done.append(bus.publish_many(events(50, start=100))))
        publisher.start()
        deadline = time.monotonic() + 10
        while not bus.problems() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bus.problems() and "unreachable" in bus.problems()[0]
        assert not done                                   # the publish waits for the server
        server.start()
        publisher.join(40)
        assert done and len(done[0]) == 50
        seen: list[int] = []
        for _ in range(100):
            r, evs = bus.fetch(100, timeout=0.3)
            seen += [e["payload"]["n"] for e in evs]
            bus.ack_many(r)
            if len(seen) >= 100:
                break
        assert len(seen) == 100 and sorted(seen) == list(range(50, 150))   # nothing acknowledged was lost
        if in_order:
            assert seen == list(range(50, 150))
        deadline = time.monotonic() + 10
        while bus.problems() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bus.problems() == [] and bus.stats()["reconnects"] >= 1
    finally:
        bus.close()
