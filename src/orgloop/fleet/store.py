"""What a fleet keeps in its shared store, and how to open the store for a bus."""
from __future__ import annotations

from typing import Any, Protocol

__all__ = ["FleetStore", "open_store", "StoreError"]


class StoreError(Exception):
    """The shared store cannot be reached or refused an operation."""


class FleetStore(Protocol):
    """The shared state of one namespace: leases, checkpoints, dedup claims and marks, members.

    A lease is held by one member with an epoch that grows with each new holder; ``acquire`` both takes a
    free lease and renews one the member holds (it returns the epoch, 0 when another member holds it).
    """

    def acquire(self, source: str, member: str, ttl: float) -> int: ...
    def release(self, source: str, member: str, epoch: int) -> None: ...
    def leases(self) -> list[dict[str, Any]]: ...
    def checkpoint(self, source: str) -> str | None: ...
    def put_checkpoint(self, source: str, value: str, member: str, epoch: int) -> bool: ...
    def dedup_claim(self, scope: str, key: bytes, token: str, window: float) -> bool: ...
    def dedup_settle(self, scope: str, marks: list[tuple[bytes, str, bool]], window: float) -> None: ...
    def heartbeat(self, member: str, record: dict[str, Any], ttl: float) -> None: ...
    def leave(self, member: str) -> None: ...
    def members(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def open_store(bus: str, bus_options: dict[str, Any], namespace: str, store: str | None = None) -> FleetStore:
    """The shared store of a fleet on ``bus``: the bus's server, or ``store`` (a ``redis://`` URL) when set.
    Kafka has no place for it, so a Kafka fleet names a Redis in ``runtime.fleet.store``."""
    url = store or (bus_options.get("url") if bus in ("redis", "nats") else None)
    if bus == "redis" or (url or "").startswith(("redis://", "rediss://", "unix://")):
        from orgloop.fleet.redis_store import RedisFleetStore

        return RedisFleetStore(url or "redis://127.0.0.1:6379/0", namespace)
    if bus == "nats" and store is None:
        from orgloop.fleet.nats_store import NatsFleetStore

        return NatsFleetStore(url or "nats://127.0.0.1:4222", namespace)
    raise StoreError(f"a fleet on the {bus} bus needs runtime.fleet.store: the URL of a Redis the members share")
