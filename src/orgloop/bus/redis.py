"""RedisBus: the event bus on Redis Streams (Tier 2), for installations that outgrow one host.

One stream per namespace (``orgloop:<namespace>:events``; a role-split fleet adds
``orgloop:<namespace>:deliveries``, option ``stream``), one consumer group (``group``, default
``router``) shared by every process of the same role, one consumer per process (``consumer``).

- ``publish_many``: one pipelined ``XADD`` per batch (the event as msgpack in field ``e``); it returns
  once Redis answered, which is durable only as far as the server's persistence goes: with
  ``appendonly yes`` and ``appendfsync always`` an acknowledged publish survives a server crash; with
  ``everysec`` up to a second may be lost; with no persistence (as on this machine kind) a Redis restart
  loses every event not yet acked. orgloop cannot make a server safer than it is configured.
- ``fetch``: first this consumer's own pending entries (what it took and did not ack before a restart),
  then entries idle for ``claim_idle`` seconds in another consumer's hands (``XAUTOCLAIM``: a dead
  member's work), then new entries (``XREADGROUP ... >``, blocking up to the timeout). While this process
  works on an entry a heartbeat resets its idle time every ``claim_idle / 3``, so only a member that is
  gone (or cut off) loses its work to the others, however slow the actor. The heartbeat refreshes only
  entries this consumer still owns (checked in the same Lua script): after a cut, what another member took
  over stays with it.
- ``ack``: pipelined ``XACK`` and ``XDEL``: the stream holds exactly the unacked entries, so it needs no
  length-based trimming (``MAXLEN`` would drop unacked work) and an ack of an entry not yet fetched
  works too (it is deleted before anyone reads it).
- Refs are stream ids written fixed-width (``0001764000000000-0000000003``) so that they sort as they
  were added; the delivered envelope carries the ref as ``bus_ref``.
- Lost connections: publishing retries with backoff for up to ``publish_timeout`` seconds (then raises,
  and the source keeps its checkpoint; an attempt under way can add ``socket_timeout``, after which a
  silent server counts as lost); acks wait for the server; fetching retries on the next dispatch round;
  ``problems()`` names the outage, so ``/healthz`` is 503 meanwhile (docs/buses.md "Connection loss").
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Iterator, Sequence

import msgpack
from pydantic import Field

from orgloop.bus.base import BusBase, BusClosedError
from orgloop.plugins import PluginConfig

__all__ = ["RedisBus", "RedisBusConfig"]

log = logging.getLogger("orgloop.bus.redis")


class RedisBusConfig(PluginConfig):
    """``bus_options`` of ``runtime.bus: redis``."""

    url: str = "redis://127.0.0.1:6379/0"
    namespace: str = Field("orgloop", pattern=r"^[A-Za-z0-9_.\-]+$")
    stream: str = Field("events", pattern=r"^[a-z]+$")   # a fleet's second stream is ``deliveries``
    group: str = "router"
    consumer: str | None = None            # default: the host name (stable across restarts)
    claim_idle: float = Field(30.0, gt=0)  # seconds before another member's pending entry is reclaimed
    publish_timeout: float = Field(30.0, ge=0)
    socket_timeout: float = Field(10.0, gt=0)   # a server silent this long counts as lost


# Reset the idle time of the entries (ARGV[3:]) that consumer ARGV[2] of group ARGV[1] still owns, and
# return those; an entry another consumer took over (after this one was cut off) is left where it is.
_REFRESH_OWNED = """
local owned = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    owned[#owned + 1] = ARGV[i]
  end
end
return owned
"""


def _ref(entry_id: bytes | str) -> str:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = raw.partition("-")
    return f"{int(ms):016d}-{int(seq or 0):010d}"


def _plain(ref: str) -> str:
    ms, _, seq = ref.partition("-")
    return f"{int(ms)}-{int(seq)}"


class RedisBus(BusBase):
    durable = True
    ref_field = "bus_ref"
    config_model = RedisBusConfig

    def __init__(self, max_inflight: int | None = None, **options: Any) -> None:
        import redis   # imported here: only installations that use this bus need the client

        super().__init__(max_inflight)
        cfg = RedisBusConfig.model_validate(options)
        self.config = cfg
        self.stream = f"orgloop:{cfg.namespace}:{cfg.stream}"
        self.group = cfg.group
        self.consumer = cfg.consumer or socket.gethostname()
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        # Typed as Any: redis-py's annotations describe RESP3 replies, not the RESP2 lists it returns here.
        self._redis: Any = redis.Redis.from_url(cfg.url, socket_timeout=cfg.socket_timeout,
                                                socket_connect_timeout=min(5.0, cfg.socket_timeout),
                                                health_check_interval=15)
        self._pending_cursor: str | None = "0-0"    # own pending entries still to re-read after a restart
        self._claim_cursor = "0-0"
        self._next_claim = 0.0
        self._lock = threading.Lock()
        self.outage: str | None = None
        self.reconnects = 0
        self.claimed = 0
        self._held: set[str] = set()        # ids fetched and not acked yet: kept fresh by the heartbeat
        self._deliveries: dict[str, int] = {}   # ref -> delivery count, for held entries delivered before
        self._refresh_owned = self._redis.register_script(_REFRESH_OWNED)
        self._call(self._ensure_group)
        self._heartbeat_stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._keep_held_fresh, name="orgloop-redis-heartbeat",
                                           daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ connection handling
    def _ensure_group(self) -> None:
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except Exception as exc:   # BUSYGROUP: it exists already
            if "BUSYGROUP" not in str(exc):
                raise

    def _call(self, fn, *args: Any, deadline: float | None = None) -> Any:
        """Run ``fn`` and retry with backoff while the server is unreachable (until ``deadline``)."""
        delay = 0.05
        while True:
            try:
                result = fn(*args)
            except self._errors as exc:
                if self.outage is None:
                    log.warning("redis bus: lost the connection to %s: %s", self.config.url, exc)
                self.outage = f"redis unreachable: {exc}"
                if self._closed:
                    raise BusClosedError("the bus was closed while the server was unreachable") from exc
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    raise
                time.sleep(delay if deadline is None else min(delay, deadline - now))
                delay = min(delay * 2, 2.0)
                continue
            self._connected()
            return result

    def _keep_held_fresh(self) -> None:
        """Every third of ``claim_idle``, reset the idle time of the entries this consumer works on and
        still owns, so a slow delivery is never taken over by another member. Ownership is checked in the
        same script (``XPENDING`` per entry, then ``XCLAIM ... JUSTID``): an entry another member took over
        while this one was cut off stays with it and is no longer kept fresh here."""
        while not self._heartbeat_stop.wait(self.config.claim_idle / 3):
            with self._lock:
                held = list(self._held)
            try:
                for i in range(0, len(held), 1000):
                    chunk = held[i:i + 1000]
                    owned = {x.decode() for x in self._refresh_owned(keys=[self.stream],
                                                                      args=[self.group, self.consumer, *chunk])}
                    with self._lock:
                        self._held.difference_update(x for x in chunk if x not in owned)
            except self._errors as exc:
                self.outage = f"redis unreachable: {exc}"

    def problems(self) -> list[str]:
        return [self.outage] if self.outage else []

    def _count_deliveries(self, refs: list[str]) -> None:
        """Note the delivery counts (``XPENDING``, one call) of entries this consumer had or took pending:
        they were delivered before. Entries read new (``>``) are on their first delivery."""
        if not refs:
            return
        pending = self._redis.xpending_range(self.stream, self.group, _plain(refs[0]), _plain(refs[-1]),
                                             len(refs) + len(self._held), consumername=self.consumer)
        wanted = set(refs)
        with self._lock:
            for p in pending:
                ref = _ref(p["message_id"])
                if ref in wanted:
                    self._deliveries[ref] = int(p["times_delivered"])

    def delivery_count(self, ref: Any) -> int | None:
        """The entry's delivery count in the consumer group (``XPENDING``): 1 for an entry read new."""
        with self._lock:
            return self._deliveries.get(ref, 1 if _plain(ref) in self._held else None)

    # ------------------------------------------------------------------ the seam
    def _store(self, events: list[dict[str, Any]]) -> Sequence[str]:
        packb = msgpack.packb

        def xadd_all() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for ev in events:
                pipe.xadd(self.stream, {b"e": packb(ev)})
            return pipe.execute()

        ids = self._call(xadd_all, deadline=time.monotonic() + self.config.publish_timeout)
        return [_ref(i) for i in ids]

    def _decode(self, entries: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
        refs, out = [], []
        for entry_id, fields in entries:
            if not fields:                    # trimmed while pending: nothing left to deliver
                continue
            ev = msgpack.unpackb(fields[b"e"])
            ref = _ref(entry_id)
            ev["bus_ref"] = ref
            refs.append(ref)
            out.append(ev)
        return refs, out

    def _fetch(self, max_events: int, timeout: float | None) -> tuple[Sequence[str], list[dict[str, Any]]]:
        try:
            return self._fetch_once(max_events, timeout)
        except self._errors as exc:
            self.outage = f"redis unreachable: {exc}"
            self._wait_for_events(lambda: False, min(timeout or 0.0, 0.5))
            return [], []

    def _fetch_once(self, max_events: int, timeout: float | None) -> tuple[Sequence[str], list[dict[str, Any]]]:
        r = self._redis
        refs: list[str] = []
        evs: list[dict[str, Any]] = []
        while self._pending_cursor is not None and len(evs) < max_events:   # ours, from before a restart
            reply = r.xreadgroup(self.group, self.consumer, {self.stream: self._pending_cursor},
                                 count=max_events - len(evs))
            entries = reply[0][1] if reply else []
            if not entries:
                self._pending_cursor = None
                break
            self._pending_cursor = entries[-1][0].decode()
            more_refs, more = self._decode(entries)
            self._count_deliveries(more_refs)
            refs += more_refs
            evs += more
        now = time.monotonic()
        if len(evs) < max_events and now >= self._next_claim:   # a dead member's work
            reply = r.xautoclaim(self.stream, self.group, self.consumer, int(self.config.claim_idle * 1000),
                                 self._claim_cursor, count=max_events - len(evs))
            cursor = reply[0]
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
            if self._claim_cursor == "0-0":
                self._next_claim = now + self.config.claim_idle / 2
            more_refs, more = self._decode(reply[1])
            self._count_deliveries(more_refs)
            self.claimed += len(more)
            refs += more_refs
            evs += more
        if len(evs) < max_events:
            block = None if evs or not timeout else max(1, int(timeout * 1000))
            reply = r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=max_events - len(evs),
                                 block=block)
            if reply:
                more_refs, more = self._decode(reply[0][1])
                refs += more_refs
                evs += more
        self._connected()
        if refs:
            with self._lock:
                self._held.update(_plain(r) for r in refs)
        return refs, evs

    def _connected(self) -> None:
        if self.outage is not None:
            log.warning("redis bus: connected again to %s", self.config.url)
            self.outage = None
            self.reconnects += 1

    def _ack_many(self, refs: Sequence[str]) -> None:
        ids = [_plain(r) for r in refs]

        def ack_and_delete() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for i in range(0, len(ids), 1000):
                chunk = ids[i:i + 1000]
                pipe.xack(self.stream, self.group, *chunk)
                pipe.xdel(self.stream, *chunk)
            pipe.execute()

        self._call(ack_and_delete)
        with self._lock:
            self._held.difference_update(ids)
            for ref in refs:
                self._deliveries.pop(ref, None)

    def _unacked(self) -> Iterator[tuple[Sequence[str], list[dict[str, Any]]]]:
        start = "-"
        while True:
            entries = self._redis.xrange(self.stream, min=start, max="+", count=1000)
            if not entries:
                return
            refs, evs = self._decode(entries)
            if evs:
                yield refs, evs
            start = "(" + entries[-1][0].decode()

    def _wake(self) -> None:
        pass                      # a blocked XREADGROUP ends within its timeout (CREDIT_POLL)

    def _close(self) -> None:
        self._heartbeat_stop.set()
        self._heartbeat.join()
        try:
            self._redis.close()
        except Exception:  # closing a broken connection: nothing more to do
            pass

    def stats(self) -> dict[str, Any]:
        st = super().stats()
        st.update({"stream": self.stream, "group": self.group, "consumer": self.consumer,
                   "connected": self.outage is None, "reconnects": self.reconnects,
                   "claimed": self.claimed})
        return st
