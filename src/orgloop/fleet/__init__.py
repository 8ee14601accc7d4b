"""The fleet: several orgloop processes on one scale-out bus (redis, nats, kafka) sharing the work.

- **Roles** (``orgloop start --role``): ``source`` runs the pollers, ``router`` matches and transforms and
  hands delivery records to the ``deliveries`` stream, ``delivery`` runs the actor lanes; ``all`` (the
  default) runs the whole pipeline in one process. Processes of one role share one consumer group.
- **Leases** (:mod:`orgloop.fleet.lease`): a source polls in one member at a time, while it holds the
  source's lease in the shared store; each new holder gets a higher epoch.
- **Checkpoints** are kept in the shared store and written with a compare-and-set on the lease epoch, so
  a member that lost its lease cannot overwrite the new holder's checkpoint.
- **Dedup** (:mod:`orgloop.fleet.dedup`): the ``dedup`` transform's claims and marks live in the shared
  store, so a key is delivered once across the fleet (within the single-host guarantee).
- **Membership** (:mod:`orgloop.fleet.membership`): each member heartbeats a record with a TTL;
  ``orgloop status`` lists the members and each consumer group's lag.

The shared store is the bus's own server (Redis; NATS KV buckets) or, for Kafka, a Redis named by
``runtime.fleet.store``.
"""
from __future__ import annotations

from orgloop.fleet.store import FleetStore, open_store

__all__ = ["ROLES", "SCALE_OUT_BUSES", "FleetStore", "open_store", "DELIVERIES"]

#: ``orgloop start --role`` values.
ROLES = ("all", "source", "router", "delivery")
#: Buses a fleet can run on (every member reaches the same server).
SCALE_OUT_BUSES = ("redis", "nats", "kafka")
#: The stream (topic) routers hand delivery records to.
DELIVERIES = "deliveries"

