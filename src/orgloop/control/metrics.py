"""Prometheus text exposition of a runtime's counters (``GET /metrics``)."""
from __future__ import annotations

from typing import Any

from orgloop.wal._wal_py import SYNC_BUCKETS_US

__all__ = ["render_metrics"]


def _label(value: Any) -> str:
    """A Prometheus label value: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(lines: list[str], name: str, kind: str, help_: str, samples: list[tuple[dict[str, Any], float]]) -> None:
    lines.append(f"# HELP {name} {help_}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")


def render_metrics(runtime: Any) -> str:
    """Prometheus text exposition of the runtime's counters."""
    st = runtime.status(remote=False)
    lines: list[str] = []
    _metric(lines, "orgloop_events_in_total", "counter", "Events published by sources.",
            [({}, st["events_published"])])
    _metric(lines, "orgloop_events_routed_total", "counter", "Events the router handled.", [({}, st["router_events"])])
    _metric(lines, "orgloop_events_acked_total", "counter", "Events fully handled and acked on the bus.",
            [({}, st["acked"])])
    per_route = st["routes"]
    for key, name, help_ in (("delivered", "orgloop_delivered_total", "Successful deliveries."),
                             ("retried", "orgloop_retried_total", "Delivery retries."),
                             ("failed", "orgloop_delivery_failures_total", "Failed delivery attempts."),
                             ("dead_lettered", "orgloop_dead_lettered_total", "Events sent to dead letters.")):
        _metric(lines, name, "counter", help_,
                [({"route": r["name"], "actor": r["actor"]}, r.get(key, 0)) for r in per_route])
    _metric(lines, "orgloop_log_entries_dropped_total", "counter",
            "Log entries dropped because the loggers could not keep up for too long.",
            [({}, st.get("log_entries_dropped", 0))])
    _metric(lines, "orgloop_dropped_total", "counter", "Events pushed out of full queues (backpressure).",
            [({"actor": a["actor"]}, a["dropped"]) for a in st["actors"]])
    _metric(lines, "orgloop_queue_depth", "gauge", "Events waiting in an actor's queue.",
            [({"actor": a["actor"]}, a["queue_depth"]) for a in st["actors"]])
    _metric(lines, "orgloop_breaker_open", "gauge", "1 while a route's circuit breaker is not closed.",
            [({"route": r["name"]}, 0 if r.get("breaker", "closed") == "closed" else 1) for r in per_route])
    _metric(lines, "orgloop_dead_letters", "gauge", "Entries in the dead-letter store.", [({}, st["dead_letters"])])
    _metric(lines, "orgloop_healthy", "gauge", "1 when healthy.", [({}, 1 if st["healthy"] else 0)])
    bus = runtime.bus.stats()
    if "connected" in bus:          # the server buses: is the server reachable, how often it came back
        _metric(lines, "orgloop_bus_connected", "gauge", "1 while the bus's server is reachable.",
                [({"bus": st["bus"]}, 1 if bus["connected"] else 0)])
        _metric(lines, "orgloop_bus_reconnects_total", "counter", "Times the bus regained its server after an outage.",
                [({"bus": st["bus"]}, bus["reconnects"])])
    wal = getattr(runtime.bus, "wal", None)
    if wal is not None:
        ws = wal.stats()
        _metric(lines, "orgloop_wal_bytes", "gauge", "Bytes of WAL segments kept.", [({}, ws["bytes"])])
        _metric(lines, "orgloop_wal_data_bytes", "gauge", "Bytes of records in the WAL segments kept.",
                [({}, ws["data_bytes"])])
        _metric(lines, "orgloop_wal_lag", "gauge", "Records appended but not yet acked.", [({}, ws["unacked"])])
        _metric(lines, "orgloop_wal_lost_records_total", "counter", "Unacked records lost to damage.",
                [({}, ws["lost_records"])])
        lines.append("# HELP orgloop_wal_fsync_seconds fdatasync latency.")
        lines.append("# TYPE orgloop_wal_fsync_seconds histogram")
        cum = 0
        for bound, count in zip(list(SYNC_BUCKETS_US) + [None], ws["sync_histogram"]):
            cum += count
            le = "+Inf" if bound is None else f"{bound / 1e6:g}"
            lines.append(f'orgloop_wal_fsync_seconds_bucket{{le="{le}"}} {cum}')
        lines.append(f"orgloop_wal_fsync_seconds_sum {ws['sync_seconds']}")
        lines.append(f"orgloop_wal_fsync_seconds_count {ws['syncs']}")
    return "\n".join(lines) + "\n"
