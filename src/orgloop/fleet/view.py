"""What ``orgloop status`` shows of a fleet: its members, source leases and consumer-group lag, read
from the shared store and the bus's server (no member needs to run on this host)."""
from __future__ import annotations

from typing import Any

from orgloop.bus import bus_namespace
from orgloop.fleet.store import FleetStore, StoreError, open_store

__all__ = ["fleet_namespace", "fleet_view", "open_fleet_view"]


def fleet_namespace(bus_options: dict[str, Any], name: str, workspace: str) -> str:
    """Where a workspace's fleet meets: ``bus_options.namespace``, else ``<name>.<workspace>`` escaped."""
    return str(bus_options.get("namespace") or bus_namespace(name, workspace))


def fleet_view(store: FleetStore, bus: str, bus_options: dict[str, Any], namespace: str) -> dict[str, Any]:
    """``{members, leases, groups}``, or ``{error}`` when the store or server cannot be read."""
    from orgloop.fleet.lag import group_lag

    try:
        return {"members": store.members(), "leases": store.leases(),
                "groups": group_lag(bus, bus_options, namespace)}
    except (StoreError, OSError) as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a client library's own error type (the server refused, timed out, ...)
        return {"error": f"{type(exc).__name__}: {exc}"}


def open_fleet_view(bus: str, bus_options: dict[str, Any], name: str, workspace: str,
                    store_url: str | None) -> dict[str, Any]:
    """:func:`fleet_view` for a CLI that has no running member at hand: opens and closes the store."""
    namespace = fleet_namespace(bus_options, name, workspace)
    try:
        store = open_store(bus, bus_options, namespace, store_url)
    except Exception as exc:  # unreachable server, or no store configured (kafka)
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        return fleet_view(store, bus, bus_options, namespace)
    finally:
        store.close()
