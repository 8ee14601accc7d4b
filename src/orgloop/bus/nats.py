"""NatsBus: the event bus on NATS JetStream (Tier 2).

One stream per namespace (``orgloop_<namespace>``, work-queue retention) holding the subjects
``orgloop.<namespace>.<source>.<type>`` (a role-split fleet adds ``orgloop_deliveries_<namespace>`` on
``orgloop-deliveries.<namespace>.>``, option ``stream``) (each token escaped as :func:`orgloop.bus.bus_namespace` does),
so subscriptions can filter by subject. Processes of one role share a durable pull consumer
(``consumer``, default ``router``) with explicit acks.

- ``publish_many``: every event of a batch is published concurrently and the call returns once
  JetStream acknowledged each one. The event id is the ``Nats-Msg-Id``, so a publish retried after a
  lost reply is stored once (within the stream's ``duplicate_window``). What "acknowledged" means on
  disk depends on the server: JetStream writes to its store at once but fsyncs on its own schedule
  (``sync_interval``, two minutes by default; ``sync_interval: always`` in the server config fsyncs every
  write). With the default, a power cut of a single server can lose the last acknowledged messages;
  a replicated stream (``replicas: 3``) survives one server's loss.
- ``fetch``: a pull with the dispatch thread's credit as the batch size. Messages not acked within
  ``ack_wait`` are redelivered by the server (up to ``max_deliver`` times; -1 = no limit); while this
  process works on a message it sends "in progress" every ``ack_wait / 3`` so a slow actor keeps its
  work. A clean ``close`` naks what it held, so it is redelivered at once.
- ``ack``: an explicit ack of a held message (work-queue retention then removes it); a ref this process
  does not hold (acked before it was fetched) is deleted from the stream instead. ``ack_many`` hands the
  acks to the event loop and returns without waiting (an ack has no reply); ``close`` waits for them. An
  ack cut off by a lost connection means one more delivery.
- Refs are stream sequence numbers written as 20-digit strings; the envelope carries them as ``bus_ref``.
- Lost connections: the client reconnects forever with backoff and drops a connection whose server left
  two pings (every ``socket_timeout / 2``) unanswered; a publish waits (retrying with the same message
  ids) up to ``publish_timeout`` seconds; ``problems()`` names the outage for ``/healthz``, and during one
  a ping each second tells when the server answers again (docs/buses.md "Connection loss").
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Coroutine, Iterator, Literal, Sequence, TypeVar

import msgpack
from pydantic import Field

from orgloop.bus.base import BusBase, BusClosedError, escape_token
from orgloop.plugins import PluginConfig

__all__ = ["NatsBus", "NatsBusConfig"]

log = logging.getLogger("orgloop.bus.nats")
T = TypeVar("T")


class NatsBusConfig(PluginConfig):
    """``bus_options`` of ``runtime.bus: nats``."""

    url: str = "nats://127.0.0.1:4222"
    namespace: str = Field("orgloop", pattern=r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
    stream: str = Field("events", pattern=r"^[a-z]+$")   # a fleet's second stream is ``deliveries``
    consumer: str = Field("router", pattern=r"^[A-Za-z0-9_\-]+$")
    ack_wait: float = Field(30.0, gt=0)
    max_deliver: int = -1
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(1, ge=1)
    duplicate_window: float = Field(120.0, gt=0)
    publish_timeout: float = Field(30.0, ge=0)
    socket_timeout: float = Field(10.0, gt=0)   # a server silent this long counts as lost (pings)


def stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop the event loop that ``thread`` runs, cancel what is still pending there (a nats client that
    could not close, its server being unreachable, leaves its reader tasks behind) and close it."""
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    if thread.is_alive():
        return
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.close()


def _ref(seq: int) -> str:
    return f"{seq:020d}"


class NatsBus(BusBase):
    durable = True
    ref_field = "bus_ref"
    config_model = NatsBusConfig

    def __init__(self, max_inflight: int | None = None, **options: Any) -> None:
        import nats  # imported here: only installations that use this bus need the client
        import nats.errors
        import nats.js.errors

        super().__init__(max_inflight)
        cfg = NatsBusConfig.model_validate(options)
        self.config = cfg
        self._nats = nats
        self._timeout_errors = (nats.errors.TimeoutError, asyncio.TimeoutError, nats.js.errors.NoStreamResponseError)
        self._conn_errors = (nats.errors.ConnectionClosedError, nats.errors.NoServersError,
                             nats.errors.ConnectionReconnectingError, nats.errors.StaleConnectionError,
                             OSError)
        # The events stream keeps the plain names; another stream (``deliveries``) gets its own subject root,
        # since the subjects of two streams must not overlap.
        root = "orgloop" if cfg.stream == "events" else f"orgloop-{cfg.stream}"
        self.stream = root.replace("-", "_") + "_" + cfg.namespace.replace(".", "_2e")
        self.prefix = f"{root}.{cfg.namespace}"
        self.outage: str | None = None
        self.reconnects = 0
        self._next_probe = 0.0
        self._held: dict[str, Any] = {}          # ref -> message fetched and not acked yet
        self._acking: set[asyncio.Task[None]] = set()   # acks on their way out (see _ack_many)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="orgloop-nats", daemon=True)
        self._loop_thread.start()
        try:
            self._run(self._connect(), timeout=30)
        except BaseException:
            self._stop_loop()
            raise
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._keep_held, name="orgloop-nats-heartbeat", daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ the event loop bridge
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        stop_loop(self._loop, self._loop_thread)

    async def _connect(self) -> None:
        from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

        async def disconnected() -> None:
            if self._closed:
                return
            if self.outage is None:
                log.warning("nats bus: lost the connection to %s", self.config.url)
            self.outage = f"nats unreachable ({self.config.url})"

        async def reconnected() -> None:
            self._connected()

        async def error(exc: Exception) -> None:
            log.debug("nats bus: %s", exc)

        self._nc = await self._nats.connect(self.config.url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                            disconnected_cb=disconnected, reconnected_cb=reconnected,
                                            error_cb=error, connect_timeout=min(5.0, self.config.socket_timeout),
                                            allow_reconnect=True, ping_interval=self.config.socket_timeout / 2,
                                            max_outstanding_pings=2)
        self._js = self._nc.jetstream(timeout=10)
        stream = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"], retention=RetentionPolicy.WORK_QUEUE,
                              storage=StorageType.FILE if self.config.storage == "file" else StorageType.MEMORY,
                              num_replicas=self.config.replicas, duplicate_window=self.config.duplicate_window)
        try:
            await self._js.add_stream(stream)
        except Exception as exc:  # it exists (perhaps with other limits): keep it as it is
            if "already in use" not in str(exc) and "exists" not in str(exc):
                raise
        self._psub = await self._js.pull_subscribe(
            f"{self.prefix}.>", durable=self.config.consumer, stream=self.stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.config.ack_wait,
                                  max_deliver=self.config.max_deliver, max_ack_pending=-1))

    def subject(self, event: dict[str, Any]) -> str:
        return f"{self.prefix}.{escape_token(str(event.get('source', '')))}.{escape_token(str(event.get('type', '')))}"

    # ------------------------------------------------------------------ the seam
    def _store(self, events: list[dict[str, Any]]) -> Sequence[str]:
        packb = msgpack.packb
        msgs = [(self.subject(ev), packb(ev), {"Nats-Msg-Id": str(ev.get("id", ""))}) for ev in events]
        deadline = time.monotonic() + self.config.publish_timeout
        delay = 0.1
        while True:
            wait = min(5.0, max(0.2, deadline - time.monotonic()))    # no attempt outlasts publish_timeout
            try:
                acks = self._run(self._publish_all(msgs, wait), timeout=wait + 1)
                return [_ref(a.seq) for a in acks]
            except (*self._timeout_errors, *self._conn_errors, TimeoutError) as exc:
                self.outage = f"nats unreachable ({self.config.url}): {type(exc).__name__}"
                if self._closed:
                    raise BusClosedError("the bus was closed while the server was unreachable") from exc
                now = time.monotonic()
                if now >= deadline:
                    raise
                time.sleep(min(delay, deadline - now))  # the same Nats-Msg-Id again: stored once
                delay = min(delay * 2, 2.0)

    async def _publish_all(self, msgs: list[tuple[str, bytes, dict[str, str]]], timeout: float) -> list[Any]:
        js = self._js
        acks = await asyncio.gather(*(js.publish(subject, data, headers=headers, timeout=timeout)
                                      for subject, data, headers in msgs))
        if self._nc.is_connected:
            self._connected()
        return list(acks)

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[str], list[dict[str, Any]]]:
        wait = max(0.05, timeout or 0.05)
        try:
            msgs = self._run(self._psub.fetch(max_events, timeout=wait), timeout=wait + 10)
        except self._timeout_errors:
            self._probe()
            return [], []
        except (*self._conn_errors, TimeoutError) as exc:
            self.outage = f"nats unreachable ({self.config.url}): {type(exc).__name__}"
            self._wait_for_events(lambda: False, min(wait, 0.5))
            return [], []
        refs: list[str] = []
        out: list[dict[str, Any]] = []
        with self._lock:
            for msg in msgs:
                ref = _ref(msg.metadata.sequence.stream)
                ev = msgpack.unpackb(msg.data)
                ev["bus_ref"] = ref
                self._held[ref] = msg
                refs.append(ref)
                out.append(ev)
        return refs, out

    def _probe(self) -> None:
        """During an outage that the client did not see (a publish timed out, the connection stayed up),
        ping the server about once a second: an empty fetch cannot tell a quiet stream from a silent server."""
        now = time.monotonic()
        if self.outage is None or now < self._next_probe or not self._nc.is_connected:
            return
        self._next_probe = now + 1.0
        try:
            self._run(asyncio.wait_for(self._nc.flush(), min(2.0, self.config.socket_timeout)), timeout=5)
        except Exception:  # still silent: the outage stays
            return
        self._connected()

    def _connected(self) -> None:
        if self.outage is not None:
            log.warning("nats bus: connected again to %s", self.config.url)
            self.outage = None
            self.reconnects += 1

    def _ack_many(self, refs: Sequence[str]) -> None:
        held: list[Any] = []
        others: list[int] = []               # acked before this process fetched them: delete them
        with self._lock:
            for r in refs:
                msg = self._held.pop(r, None)
                if msg is not None:
                    held.append(msg)
                else:
                    others.append(int(r))
        # The caller does not wait for the event loop: an ack has no reply to wait for (the client's flusher
        # sends it within milliseconds), and an ack lost with the connection only means one more delivery
        # (at-least-once). The loop runs callbacks in order, so a later request of this process (a fetch,
        # close's flush) goes out after these acks; close also waits for the acks still being sent.
        self._loop.call_soon_threadsafe(self._start_ack, held, others)

    def _start_ack(self, held: list[Any], others: list[int]) -> None:
        task = self._loop.create_task(self._ack(held, others))
        self._acking.add(task)
        task.add_done_callback(self._acking.discard)

    async def _ack(self, held: list[Any], others: list[int]) -> None:
        try:
            for msg in held:
                await msg.ack()
        except Exception as exc:  # the connection is gone: the server redelivers after ack_wait
            log.warning("nats bus: acks of %d events did not reach %s (%s); they will be delivered again",
                        len(held), self.config.url, exc)
        for seq in others:
            try:
                await self._js.delete_msg(self.stream, seq)
            except Exception as exc:  # already gone (acked elsewhere): nothing to do
                log.debug("nats bus: deleting %d: %s", seq, exc)

    def _keep_held(self) -> None:
        """Tell the server every ``ack_wait / 3`` that held messages are still being worked on."""
        while not self._heartbeat_stop.wait(self.config.ack_wait / 3):
            with self._lock:
                held = list(self._held.values())
            if held:
                try:
                    self._run(self._in_progress(held), timeout=30)
                except Exception as exc:  # an outage: the server redelivers after ack_wait, at worst
                    log.debug("nats bus: in-progress signals failed: %s", exc)

    @staticmethod
    async def _in_progress(msgs: list[Any]) -> None:
        for msg in msgs:
            await msg.in_progress()

    def _unacked(self) -> Iterator[tuple[Sequence[str], list[dict[str, Any]]]]:
        info = self._run(self._js.stream_info(self.stream), timeout=30)
        first, last = info.state.first_seq, info.state.last_seq
        refs: list[str] = []
        out: list[dict[str, Any]] = []
        for seq in range(first, last + 1):
            try:
                raw = self._run(self._js.get_msg(self.stream, seq), timeout=30)
            except Exception:  # deleted (acked) in between
                continue
            ev = msgpack.unpackb(raw.data)
            ev["bus_ref"] = _ref(seq)
            refs.append(ev["bus_ref"])
            out.append(ev)
            if len(out) >= 1000:
                yield refs, out
                refs, out = [], []
        if out:
            yield refs, out

    def delivery_count(self, ref: Any) -> int | None:
        """The message's ``num_delivered`` (JetStream counts every delivery, redeliveries included)."""
        msg = self._held.get(ref)
        return None if msg is None else int(msg.metadata.num_delivered)

    def problems(self) -> list[str]:
        return [self.outage] if self.outage else []

    def _close(self) -> None:
        self._heartbeat_stop.set()
        self._heartbeat.join()
        with self._lock:
            held = list(self._held.values())
            self._held.clear()

        async def shut() -> None:
            if self._acking:                  # acks handed over before close go out first
                await asyncio.wait(list(self._acking), timeout=5)
            for msg in held:                  # redeliver what we held at once, not after ack_wait
                try:
                    await msg.nak()
                except Exception as exc:  # the server will redeliver after ack_wait anyway
                    log.debug("nats bus: nak failed: %s", exc)
            await self._nc.flush(timeout=5)
            await self._nc.close()

        try:
            self._run(shut(), timeout=15)
        except Exception as exc:  # closing a broken connection: nothing more to do
            log.debug("nats bus: close: %s", exc)
        self._stop_loop()

    def stats(self) -> dict[str, Any]:
        st = super().stats()
        st.update({"stream": self.stream, "consumer": self.config.consumer, "connected": self.outage is None,
                   "reconnects": self.reconnects, "held": len(self._held)})
        return st
