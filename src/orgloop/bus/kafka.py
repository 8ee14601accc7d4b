"""KafkaBus: the event bus on the Kafka protocol (Tier 3), with ``confluent-kafka``.

One topic per namespace (``orgloop.<namespace>.events``, created with ``partitions`` partitions when
missing), keyed by ``partition_key`` (default the event's ``source``), so order holds per key.

- ``publish_many``: an idempotent producer (``enable.idempotence``, ``acks=all``): the call returns once
  the broker acknowledged every event of the batch. What that means on disk is the broker's business
  (``acks=all`` with ``min.insync.replicas`` ≥ 2 survives one broker's loss; Kafka itself does not
  fsync each write).
- ``fetch``: a consumer in group ``group`` (processes of one role share it) with auto-commit off.
- ``ack``: offsets are committed per partition only up to the lowest event of that partition not acked
  yet, so out-of-order completion never skips work. The price: after a restart or a rebalance, events
  above that point that were already acked are delivered again (Kafka keeps one offset per partition,
  not a set of acks). Within one process they are never handed out twice.
- Refs are ``<partition>:<offset>`` written fixed-width (``00003:00000000000000000042``); the envelope
  carries them as ``bus_ref``.
- Lost connections: librdkafka reconnects by itself (a broker silent for ``socket_timeout`` counts as
  lost); a publish waits up to ``publish_timeout`` seconds for delivery reports (the idempotent producer
  retries without duplicates), and ``problems()`` reports the broker being unreachable (for ``/healthz``)
  until a fetch, a publish or a metadata probe (once a second) gets an answer (docs/buses.md
  "Connection loss").
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from typing import Any, Iterator, Sequence

import msgpack
from pydantic import Field

from orgloop.bus.base import BusBase, BusClosedError
from orgloop.plugins import PluginConfig

__all__ = ["KafkaBus", "KafkaBusConfig"]

log = logging.getLogger("orgloop.bus.kafka")


class KafkaBusConfig(PluginConfig):
    """``bus_options`` of ``runtime.bus: kafka``."""

    bootstrap_servers: str = "127.0.0.1:9092"
    namespace: str = Field("orgloop", pattern=r"^[A-Za-z0-9_.\-]+$")
    stream: str = Field("events", pattern=r"^[a-z]+$")   # a fleet's second topic is ``deliveries``
    group: str = "router"
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    partition_key: str = "source"               # the envelope field events are keyed by
    publish_timeout: float = Field(30.0, gt=0)
    session_timeout_ms: int = Field(6000, ge=1000)
    socket_timeout: float = Field(10.0, gt=0)   # a broker silent this long counts as lost (socket.timeout.ms)
    client_options: dict[str, str | int | float | bool] = Field(default_factory=dict)   # librdkafka settings


def _ref(partition: int, offset: int) -> str:
    return f"{partition:05d}:{offset:020d}"


def _parse(ref: str) -> tuple[int, int]:
    p, _, o = ref.partition(":")
    return int(p), int(o)


class _Partition:
    """Offsets of one partition handed out and not acked (sorted), and acks that arrived early."""

    __slots__ = ("open", "acked_ahead", "committed", "fetched_high")

    def __init__(self) -> None:
        self.open: list[int] = []
        self.acked_ahead: set[int] = set()
        self.committed = -1          # the offset last committed (the next one to read after a restart)
        self.fetched_high = -1       # the highest offset handed out (a partition is read in order)

    def acked(self, offset: int) -> bool:
        """True when this process knows ``offset`` is finished."""
        if offset < self.committed or offset in self.acked_ahead:
            return True
        return offset <= self.fetched_high and offset not in self.open


class KafkaBus(BusBase):
    durable = True
    ref_field = "bus_ref"
    config_model = KafkaBusConfig

    def __init__(self, max_inflight: int | None = None, **options: Any) -> None:
        import confluent_kafka  # imported here: only installations that use this bus need the client

        super().__init__(max_inflight)
        cfg = KafkaBusConfig.model_validate(options)
        self.config = cfg
        self._ck = confluent_kafka
        self.topic = f"orgloop.{cfg.namespace}.{cfg.stream}"
        self.outage: str | None = None
        self.reconnects = 0
        self._next_probe = 0.0
        self._lock = threading.Lock()
        self._parts: dict[int, _Partition] = {}
        self._to_commit: dict[int, int] = {}     # partition -> offset acked up to, for the polling thread
        common = {"bootstrap.servers": cfg.bootstrap_servers, "error_cb": self._on_error,
                  "socket.timeout.ms": int(cfg.socket_timeout * 1000), **cfg.client_options}
        self._ensure_topic(common)
        self._producer = confluent_kafka.Producer({**common, "enable.idempotence": True, "acks": "all",
                                                   "linger.ms": 2})
        self._consumer = confluent_kafka.Consumer({
            **common, "group.id": cfg.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": cfg.session_timeout_ms, "fetch.wait.max.ms": 10,
            "max.poll.interval.ms": 10_000, "heartbeat.interval.ms": max(100, cfg.session_timeout_ms // 10),
            "on_commit": self._on_commit})
        self._subscribed = False      # joins the group at the first fetch: a publisher never joins it
        self._buffered: list[Any] = []   # messages a keep-alive poll returned, handed out first
        self._paused = False
        self._common = common

    def _ensure_topic(self, common: dict[str, Any]) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(common)
        futures = admin.create_topics([NewTopic(self.topic, num_partitions=self.config.partitions,
                                                replication_factor=self.config.replication_factor)])
        try:
            futures[self.topic].result(30)
        except Exception as exc:   # TOPIC_ALREADY_EXISTS is fine; anything else is not
            if "already exists" not in str(exc).lower() and "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

    def _idle(self) -> None:
        """The consumer has no credit: keep the group membership alive without taking more events.

        librdkafka drops a member that does not poll within ``max.poll.interval.ms``; a slow actor must
        not cost a rebalance (and redeliveries). Fetching is paused, polling goes on, and anything
        already on its way is kept for the next fetch."""
        if not self._subscribed:
            return
        self._commit_pending()
        self._probe()
        assigned = self._consumer.assignment()
        if assigned and not self._paused:
            self._consumer.pause(assigned)
            self._paused = True
        self._buffered += self._consumer.consume(100, 0)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            assigned = self._consumer.assignment()
            if assigned:
                self._consumer.resume(assigned)

    def _caught_up(self) -> bool:
        """True once this consumer has partitions and has read each of them to its end."""
        consumer = self._consumer
        assigned = consumer.assignment()
        if not assigned:
            return False
        unknown = [tp for tp in consumer.position(assigned) if tp.offset < 0]
        if not unknown:
            return True          # positioned everywhere; an empty consume means nothing new arrived
        for tp in consumer.committed(unknown, timeout=5):
            low, high = consumer.get_watermark_offsets(self._ck.TopicPartition(self.topic, tp.partition), timeout=5)
            if (tp.offset if tp.offset >= 0 else low) < high:
                return False
        return True

    def _connected(self) -> None:
        if self.outage is not None:
            log.warning("kafka bus: connected again to %s", self.config.bootstrap_servers)
            self.outage = None
            self.reconnects += 1

    def _probe(self) -> None:
        """During an outage, ask for the topic's metadata about once a second: librdkafka reports a lost
        broker but not its return, and a consumer with nothing new to read would stay unhealthy."""
        now = time.monotonic()
        if self.outage is None or now < self._next_probe:
            return
        self._next_probe = now + 1.0
        try:
            self._consumer.list_topics(self.topic, timeout=min(1.0, self.config.socket_timeout))
        except self._ck.KafkaException:
            return
        self._connected()

    def _on_error(self, err: Any) -> None:
        if err.code() in (self._ck.KafkaError._ALL_BROKERS_DOWN, self._ck.KafkaError._TRANSPORT):
            if self.outage is None:
                log.warning("kafka bus: %s", err.str())
            self.outage = f"kafka unreachable: {err.str()}"

    def _on_commit(self, err: Any, partitions: list[Any]) -> None:
        if err is not None:
            log.debug("kafka bus: commit failed (retried with the next ack): %s", err)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Another member takes these partitions: it starts from the committed offset, so what this
        # process held there is delivered again by the new owner (at-least-once).
        self._commit_pending()
        with self._lock:
            for tp in partitions:
                self._parts.pop(tp.partition, None)

    # ------------------------------------------------------------------ the seam
    def _key(self, event: dict[str, Any]) -> bytes:
        return str(event.get(self.config.partition_key, "")).encode()

    def _store(self, events: list[dict[str, Any]]) -> Sequence[str]:
        results: list[Any] = [None] * len(events)
        errors: list[Any] = []

        def report(i: int):
            def cb(err: Any, msg: Any) -> None:
                if err is not None:
                    errors.append(err)
                else:
                    results[i] = _ref(msg.partition(), msg.offset())
            return cb

        packb = msgpack.packb
        for i, ev in enumerate(events):
            while True:
                try:
                    self._producer.produce(self.topic, key=self._key(ev), value=packb(ev), on_delivery=report(i))
                    break
                except BufferError:         # the local queue is full: let it drain
                    self._producer.poll(0.1)
        deadline = time.monotonic() + self.config.publish_timeout
        while any(r is None for r in results) and not errors:
            if self._closed:
                raise BusClosedError("the bus was closed while publishing")
            if time.monotonic() >= deadline:
                self.outage = f"kafka unreachable: no answer to a publish within {self.config.publish_timeout:g}s"
                raise TimeoutError(f"kafka bus: {sum(r is None for r in results)} events not acknowledged by "
                                   f"the broker within {self.config.publish_timeout:g}s")
            self._producer.flush(0.5)
        if errors:
            raise OSError(f"kafka bus: publishing failed: {errors[0]}")
        self._connected()
        return results

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[str], list[dict[str, Any]]]:
        if not self._subscribed:
            self._consumer.subscribe([self.topic], on_revoke=self._on_revoke)
            self._subscribed = True
        self._commit_pending()
        if self._buffered:
            msgs, self._buffered = self._buffered[:max_events], self._buffered[max_events:]
        else:
            self._resume()
            msgs = self._consumer.consume(max_events, timeout if timeout else 0)
        give_up = time.monotonic() + 30
        while (not msgs and not self._closed and self.outage is None and time.monotonic() < give_up
               and not self._caught_up()):
            # Joining the group, rebalancing, or not positioned in a partition yet: an empty answer
            # would say "caught up", which is not known yet (and cannot be during an outage).
            msgs = self._consumer.consume(max_events, 0.05)
        refs: list[str] = []
        out: list[dict[str, Any]] = []
        with self._lock:
            for msg in msgs:
                if msg.error():
                    if msg.error().code() != self._ck.KafkaError._PARTITION_EOF:
                        log.warning("kafka bus: %s", msg.error())
                    continue
                p, off = msg.partition(), msg.offset()
                part = self._parts.get(p)
                if part is None:
                    part = self._parts[p] = _Partition()
                if off in part.acked_ahead:        # acked before it was fetched
                    part.acked_ahead.discard(off)
                    continue
                bisect.insort(part.open, off)
                part.fetched_high = max(part.fetched_high, off)
                ev = msgpack.unpackb(msg.value())
                ev["bus_ref"] = _ref(p, off)
                refs.append(ev["bus_ref"])
                out.append(ev)
        if msgs:
            self._connected()
        else:
            self._probe()
        return refs, out

    def _ack_many(self, refs: Sequence[str]) -> None:
        with self._lock:
            touched: dict[int, int] = {}
            for ref in refs:
                p, off = _parse(ref)
                part = self._parts.get(p)
                if part is None:
                    part = self._parts[p] = _Partition()
                i = bisect.bisect_left(part.open, off)
                if i < len(part.open) and part.open[i] == off:
                    del part.open[i]
                    touched[p] = max(touched.get(p, -1), off)
                else:
                    part.acked_ahead.add(off)
            for p, highest in touched.items():
                part = self._parts[p]
                upto = part.open[0] if part.open else highest + 1   # the lowest offset not finished yet
                if upto > part.committed:
                    part.committed = self._to_commit[p] = upto

    def _commit_pending(self) -> None:
        """Commit the offsets acks moved, on the thread that polls the consumer: confluent-kafka's commit
        waits while another thread is in ``consume``, which the dispatch thread calls back to back, so an
        ack (from a delivery worker) that committed itself would wait for ever."""
        with self._lock:
            if not self._to_commit:
                return
            offsets = [self._ck.TopicPartition(self.topic, p, o) for p, o in self._to_commit.items()]
            self._to_commit.clear()
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except self._ck.KafkaException as exc:   # e.g. during a rebalance: the events come again (at-least-once)
            log.debug("kafka bus: commit: %s", exc)

    def _unacked(self) -> Iterator[tuple[Sequence[str], list[dict[str, Any]]]]:
        """Everything from each partition's committed offset to its end, less what this process acked
        (slow: it reads the partitions; for tools and tests)."""
        ck = self._ck
        reader = ck.Consumer({**self._common, "group.id": self.config.group, "enable.auto.commit": False})
        try:
            meta = reader.list_topics(self.topic, timeout=10)
            tps = [ck.TopicPartition(self.topic, p) for p in sorted(meta.topics[self.topic].partitions)]
            committed = reader.committed(tps, timeout=10)
            refs: list[str] = []
            out: list[dict[str, Any]] = []
            # Read each partition from its committed offset until it stays quiet for a second (some
            # Kafka-protocol brokers report high watermarks per record batch, so those are not trusted).
            for tp in committed:
                reader.assign([ck.TopicPartition(self.topic, tp.partition, tp.offset if tp.offset >= 0 else
                                                 ck.OFFSET_BEGINNING)])
                while True:
                    msgs = [m for m in reader.consume(1000, 1.0) if not m.error()]
                    if not msgs:
                        break
                    for msg in msgs:
                        with self._lock:
                            part = self._parts.get(tp.partition)
                            done = part is not None and part.acked(msg.offset())
                        if done:
                            continue
                        ev = msgpack.unpackb(msg.value())
                        ev["bus_ref"] = _ref(tp.partition, msg.offset())
                        refs.append(ev["bus_ref"])
                        out.append(ev)
            if out:
                yield refs, out
        finally:
            reader.close()

    def problems(self) -> list[str]:
        return [self.outage] if self.outage else []

    def _close(self) -> None:
        try:
            self._producer.flush(5)
            if self._subscribed:
                self._commit_pending()
            self._consumer.close()          # leaves the group at once, so the others take over now
        except Exception as exc:  # a broken connection: nothing more to do
            log.debug("kafka bus: close: %s", exc)

    def stats(self) -> dict[str, Any]:
        st = super().stats()
        with self._lock:
            held = sum(len(p.open) for p in self._parts.values())
        st.update({"topic": self.topic, "group": self.config.group, "connected": self.outage is None,
                   "reconnects": self.reconnects, "held": held})
        return st
