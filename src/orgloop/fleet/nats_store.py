"""The fleet's shared store on NATS: one JetStream key-value bucket per namespace (``orgloop_fleet_<ns>``),
every check-and-write a compare-and-set on the key's revision.

Values carry the writer's wall-clock time, and an entry older than its TTL counts as lapsed (the server of
this machine kind, 2.9, has no per-key TTL). Members must therefore keep their clocks in step (NTP): an
offset between two members' clocks shortens or lengthens a lease by that much, which the lease's safety
share (:data:`orgloop.fleet.lease.SAFETY`) has to cover.

Keys: ``lease.<source>`` = ``<epoch>|<member>|<written>|<ttl>`` (a released lease keeps its epoch, with an
empty member, so epochs only grow), ``cp.<source>`` = ``<epoch>|<value>`` (written only over a checkpoint
of the same or an earlier epoch, by the lease's holder, with the revision it read),
``dedup.<scope>.<key>`` = ``<token>|<written>`` (a claim), ``done.<scope>.<key>`` = ``<written>`` (a mark),
``member.<id>`` = JSON with ``last_seen``.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Coroutine, TypeVar

from orgloop.bus.base import escape_token
from orgloop.bus.nats import stop_loop
from orgloop.fleet.store import StoreError

__all__ = ["NatsFleetStore"]
T = TypeVar("T")


class NatsFleetStore:
    """:class:`~orgloop.fleet.store.FleetStore` on a NATS JetStream KV bucket (see the module docstring)."""

    def __init__(self, url: str, namespace: str, clock: Any = time.time) -> None:
        import nats.js.errors

        self.url = url
        self.bucket = "orgloop_fleet_" + escape_token(namespace)
        self.clock = clock
        self._missing = (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError)
        self._conflict = (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.APIError)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="orgloop-fleet-nats", daemon=True)
        self._thread.start()
        self._run(self._connect())

    async def _connect(self) -> None:
        import nats

        self._nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5)
        js = self._nc.jetstream(timeout=5)
        try:
            self._kv = await js.key_value(self.bucket)
        except Exception:  # not there yet: the first member creates it
            self._kv = await js.create_key_value(bucket=self.bucket, history=1)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise StoreError(f"nats {self.url} unreachable: {exc!r}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("nats"):
                raise StoreError(f"nats {self.url}: {exc!r}") from exc
            raise

    async def _get(self, key: str) -> tuple[str | None, int]:
        """(value, revision); (None, 0) when absent."""
        try:
            entry = await self._kv.get(key)
        except self._missing:
            return None, 0
        return (entry.value or b"").decode(), entry.revision or 0

    async def _cas(self, key: str, value: str, revision: int) -> bool:
        """Write ``value`` if the key is still at ``revision`` (0: still absent)."""
        try:
            if revision:
                await self._kv.update(key, value.encode(), last=revision)
            else:
                await self._kv.create(key, value.encode())
        except self._conflict:
            return False
        return True

    # ------------------------------------------------------------------ leases
    def acquire(self, source: str, member: str, ttl: float) -> int:
        return self._run(self._acquire(f"lease.{escape_token(source)}", member, ttl))

    async def _acquire(self, key: str, member: str, ttl: float) -> int:
        raw, rev = await self._get(key)
        epoch, holder, written, held_ttl = 0, "", 0.0, 0.0
        if raw:
            e, holder, w, t = raw.split("|")
            epoch, written, held_ttl = int(e), float(w), float(t)
        now = self.clock()
        if holder == member and now < written + held_ttl:
            new = epoch                          # renew
        elif not holder or now >= written + held_ttl:
            new = epoch + 1                      # free or lapsed: take it
        else:
            return 0
        return new if await self._cas(key, f"{new}|{member}|{now}|{ttl}", rev) else 0

    def release(self, source: str, member: str, epoch: int) -> None:
        async def release() -> None:
            key = f"lease.{escape_token(source)}"
            raw, rev = await self._get(key)
            if raw and raw.split("|")[:2] == [str(epoch), member]:
                await self._cas(key, f"{epoch}||0|0", rev)
        self._run(release())

    def leases(self) -> list[dict[str, Any]]:
        async def leases() -> list[dict[str, Any]]:
            out = []
            for key in await self._keys("lease."):
                raw, _rev = await self._get(key)
                if not raw:
                    continue
                e, holder, w, t = raw.split("|")
                left = float(w) + float(t) - self.clock()
                if holder and left > 0:
                    out.append({"source": key.split(".", 1)[1], "holder": holder, "epoch": int(e), "expires_in": left})
            return out
        return self._run(leases())

    async def _keys(self, prefix: str) -> list[str]:
        try:
            keys = await self._kv.keys()
        except Exception:  # NoKeysError: an empty bucket
            return []
        return sorted(k for k in keys if k.startswith(prefix))

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, source: str) -> str | None:
        raw, _rev = self._run(self._get(f"cp.{escape_token(source)}"))
        return raw.split("|", 1)[1] if raw else None

    def put_checkpoint(self, source: str, value: str, member: str, epoch: int) -> bool:
        async def put() -> bool:
            lease, _ = await self._get(f"lease.{escape_token(source)}")
            if not lease or lease.split("|")[:2] != [str(epoch), member]:
                return False
            key = f"cp.{escape_token(source)}"
            raw, rev = await self._get(key)
            if raw and int(raw.split("|", 1)[0]) > epoch:
                return False
            return await self._cas(key, f"{epoch}|{value}", rev)
        return self._run(put())

    # ------------------------------------------------------------------ dedup
    def dedup_claim(self, scope: str, key: bytes, token: str, window: float) -> bool:
        async def claim() -> bool:
            name = f"{escape_token(scope)}.{key.hex()}"
            now = self.clock()
            done, _ = await self._get(f"done.{name}")
            if done and now < float(done) + window:
                return False
            raw, rev = await self._get(f"dedup.{name}")
            if raw:
                held, written = raw.rsplit("|", 1)
                if held == token:
                    return True
                if now < float(written) + window:
                    return False
            return await self._cas(f"dedup.{name}", f"{token}|{now}", rev)
        return self._run(claim())

    def dedup_settle(self, scope: str, marks: list[tuple[bytes, str, bool]], window: float) -> None:
        async def settle() -> None:
            for key, token, delivered in marks:
                name = f"{escape_token(scope)}.{key.hex()}"
                raw, rev = await self._get(f"dedup.{name}")
                if not raw or raw.rsplit("|", 1)[0] != token:
                    continue                     # expired and claimed by another copy meanwhile
                if delivered:
                    await self._kv.put(f"done.{name}", str(self.clock()).encode())
                try:
                    await self._kv.delete(f"dedup.{name}", last=rev)
                except self._conflict:
                    pass
        self._run(settle())

    # ------------------------------------------------------------------ membership
    def heartbeat(self, member: str, record: dict[str, Any], ttl: float) -> None:
        self._run(self._kv.put(f"member.{escape_token(member)}", json.dumps({**record, "ttl": ttl}).encode()))

    def leave(self, member: str) -> None:
        self._run(self._kv.delete(f"member.{escape_token(member)}"))

    def members(self) -> list[dict[str, Any]]:
        async def members() -> list[dict[str, Any]]:
            out = []
            for key in await self._keys("member."):
                raw, _rev = await self._get(key)
                if raw:
                    rec = json.loads(raw)
                    if self.clock() < rec["last_seen"] + rec.pop("ttl"):
                        out.append(rec)
            return sorted(out, key=lambda m: (m["role"], m["member"]))
        return self._run(members())

    def close(self) -> None:
        try:
            self._run(self._nc.close())
        except StoreError:
            pass
        stop_loop(self._loop, self._thread)
