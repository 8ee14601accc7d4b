"""Loggers receive every pipeline step as a log entry (see ``orgloop-format.md`` for phases and fields).

A logger plugin is ``cls(name, config, *, base_dir)`` with ``log_many(entries) -> None`` and ``close()``;
it declares ``config_model`` (a :class:`orgloop.plugins.PluginConfig`) and validates ``config`` with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

__all__ = ["Logger", "PHASES", "ENTRY_FIELDS"]

PHASES = (
    "source.emit", "source.circuit_open", "source.retry", "source.close", "source.poll", "source.lease",
    "transform.start", "transform.pass", "transform.drop", "transform.error", "transform.error_drop",
    "transform.error_halt", "route.match", "route.no_match",
    "deliver.attempt", "deliver.success", "deliver.failure", "deliver.retry",
    "system.start", "system.stop", "system.error", "runtime.start", "runtime.stop",
    "loop.detected", "loop.circuit_broken",
    "pipeline.backpressure", "breaker.open", "breaker.half_open", "breaker.close", "dlq.add",
)
ENTRY_FIELDS = ("timestamp", "event_id", "trace_id", "phase", "source", "target", "route", "transform",
                "event_type", "result", "duration_ms", "queue_depth", "error", "metadata",
                "orgloop_version", "hostname", "workspace")


class Logger(Protocol):
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def log_many(self, entries: list[dict[str, Any]]) -> None: ...
    def close(self) -> None: ...
