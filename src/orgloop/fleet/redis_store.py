"""The fleet's shared store on Redis: leases with SET NX PX and an epoch counter, checkpoints written by a
compare-and-set on the lease, dedup claims with SET NX PX, member records with a TTL.

Keys (``<p>`` = ``orgloop:<namespace>:fleet``): ``<p>:lease:<source>`` = ``<epoch>|<member>`` (expires
with the lease), ``<p>:epoch:<source>`` (the counter), ``<p>:cp:<source>`` (hash ``value``, ``epoch``),
``<p>:dedup:<scope>:<key>`` (a claim: the bus ref of the copy in flight), ``<p>:done:<scope>:<key>`` (a
delivered mark), ``<p>:member:<id>`` (JSON). Every check-and-write is one Lua script, so it is atomic on
the server, and expiry is the server's clock, never a member's.
"""
from __future__ import annotations

import json
from typing import Any

from orgloop.bus.base import escape_token
from orgloop.fleet.store import StoreError

__all__ = ["RedisFleetStore"]

# KEYS: lease, epoch counter; ARGV: member, ttl ms. Renews the member's own lease (same epoch), takes a free
# one (next epoch), or returns 0 when another member holds it.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  if string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sep - 1))
  end
  return 0
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], epoch .. '|' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""
# KEYS: lease; ARGV: "<epoch>|<member>"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: lease, checkpoint; ARGV: "<epoch>|<member>", value, epoch. Written only while that lease is held,
# and never over a checkpoint of a later epoch.
_PUT_CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local stored = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
if stored > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[2], 'value', ARGV[2], 'epoch', ARGV[3])
return 1
"""
# KEYS: delivered mark, claim; ARGV: token (the bus ref of this copy), window ms. 1: this copy may pass.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[2]) == ARGV[1] then return 1 end
return 0
"""
# KEYS: delivered mark, claim; ARGV: token, window ms, "1" delivered / "0" released. Only the claim's owner
# settles it (an expired claim taken by another copy is left alone).
_SETTLE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[1], '1', 'PX', ARGV[2]) end
return 1
"""


class RedisFleetStore:
    """:class:`~orgloop.fleet.store.FleetStore` on a Redis server (see the module docstring)."""

    def __init__(self, url: str, namespace: str) -> None:
        import redis

        self.url = url
        self.prefix = f"orgloop:{namespace}:fleet"
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._errors = (redis.ConnectionError, redis.TimeoutError)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._put_cp = self._redis.register_script(_PUT_CHECKPOINT)
        self._claim = self._redis.register_script(_CLAIM)
        self._settle = self._redis.register_script(_SETTLE)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}:{kind}:{escape_token(name)}"

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"redis {self.url} unreachable: {exc}") from exc

    # ------------------------------------------------------------------ leases
    def acquire(self, source: str, member: str, ttl: float) -> int:
        return int(self._call(self._acquire, keys=[self._key("lease", source), self._key("epoch", source)],
                              args=[member, int(ttl * 1000)]))

    def release(self, source: str, member: str, epoch: int) -> None:
        self._call(self._release, keys=[self._key("lease", source)], args=[f"{epoch}|{member}"])

    def leases(self) -> list[dict[str, Any]]:
        out = []
        for key in self._call(lambda: sorted(self._redis.scan_iter(f"{self.prefix}:lease:*", count=1000))):
            raw, ttl = self._call(lambda k=key: self._redis.pipeline().get(k).pttl(k).execute())
            if raw is None:
                continue
            epoch, _, holder = raw.decode().partition("|")
            out.append({"source": key.decode().rsplit(":", 1)[1], "holder": holder, "epoch": int(epoch),
                        "expires_in": max(0, ttl) / 1000})
        return out

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, source: str) -> str | None:
        raw = self._call(self._redis.hget, self._key("cp", source), "value")
        return raw.decode() if raw is not None else None

    def put_checkpoint(self, source: str, value: str, member: str, epoch: int) -> bool:
        return bool(self._call(self._put_cp, keys=[self._key("lease", source), self._key("cp", source)],
                               args=[f"{epoch}|{member}", value, epoch]))

    # ------------------------------------------------------------------ dedup
    def _dedup_keys(self, scope: str, key: bytes) -> list[str]:
        return [f"{self.prefix}:done:{escape_token(scope)}:{key.hex()}",
                f"{self.prefix}:dedup:{escape_token(scope)}:{key.hex()}"]

    def dedup_claim(self, scope: str, key: bytes, token: str, window: float) -> bool:
        return bool(self._call(self._claim, keys=self._dedup_keys(scope, key), args=[token, int(window * 1000)]))

    def dedup_settle(self, scope: str, marks: list[tuple[bytes, str, bool]], window: float) -> None:
        if not marks:
            return
        pipe = self._redis.pipeline(transaction=False)
        for key, token, delivered in marks:
            self._settle(keys=self._dedup_keys(scope, key), args=[token, int(window * 1000), int(delivered)],
                         client=pipe)
        self._call(pipe.execute)

    # ------------------------------------------------------------------ membership
    def heartbeat(self, member: str, record: dict[str, Any], ttl: float) -> None:
        self._call(self._redis.set, self._key("member", member), json.dumps(record), px=int(ttl * 1000))

    def leave(self, member: str) -> None:
        self._call(self._redis.delete, self._key("member", member))

    def members(self) -> list[dict[str, Any]]:
        keys = self._call(lambda: list(self._redis.scan_iter(f"{self.prefix}:member:*", count=1000)))
        raws = self._call(self._redis.mget, keys) if keys else []
        return sorted((json.loads(r) for r in raws if r is not None), key=lambda m: (m["role"], m["member"]))

    def close(self) -> None:
        self._redis.close()
