"""``console`` logger: compact human lines on stderr (colour only on a TTY).

Config: ``level`` (``debug`` | ``info`` | ``warn`` | ``error``, default ``info``), ``color`` (default
true: colour when stderr is a terminal), ``show_payload`` (add each entry's ``metadata`` as JSON),
``compact`` (default true; false puts the metadata on an indented line of its own). Per-event success
phases are ``debug``; matches and drops ``info``; retries and backpressure ``warn``; failures ``error``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal, TextIO

import click

from orgloop.plugins import PluginConfig

__all__ = ["ConsoleLogger", "ConsoleConfig", "phase_level", "LEVELS"]

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}
_PHASE_LEVEL = {
    "deliver.attempt": "debug", "transform.start": "debug", "transform.pass": "debug", "source.emit": "debug",
    "source.poll": "debug", "source.lease": "info", "deliver.success": "info", "route.match": "debug", "route.no_match": "debug", "transform.drop": "info",
    "runtime.start": "info", "runtime.stop": "info", "system.start": "info", "system.stop": "info",
    "breaker.close": "info", "deliver.retry": "warn", "pipeline.backpressure": "warn", "breaker.half_open": "warn",
    "transform.error": "warn", "transform.error_drop": "warn", "source.retry": "warn", "loop.detected": "warn",
    "deliver.failure": "error", "breaker.open": "error", "dlq.add": "error", "transform.error_halt": "error",
    "system.error": "error", "source.circuit_open": "error", "loop.circuit_broken": "error",
}
_COLOURS = {"debug": "bright_black", "info": None, "warn": "yellow", "error": "red"}


class ConsoleConfig(PluginConfig):
    """Settings of the ``console`` logger."""

    level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    color: bool = True
    compact: bool = True
    show_payload: bool = False


def phase_level(phase: str) -> str:
    return _PHASE_LEVEL.get(phase, "info")


class ConsoleLogger:
    config_model = ConsoleConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 stream: TextIO | None = None) -> None:
        cfg = ConsoleConfig.model_validate(config)
        self.threshold = LEVELS["warn" if cfg.level == "warning" else cfg.level]
        self.stream = stream or sys.stderr
        self.colour = cfg.color and self.stream.isatty()
        self.show_payload = cfg.show_payload
        self.compact = cfg.compact

    def format(self, e: dict[str, Any]) -> str:
        parts = [e.get("timestamp", "")[11:23], e["phase"]]
        for key in ("route", "source", "target", "transform", "event_type", "event_id", "result"):
            if e.get(key):
                parts.append(f"{key}={e[key]}")
        if e.get("duration_ms") is not None:
            parts.append(f"{e['duration_ms']:.1f}ms")
        if e.get("error"):
            parts.append(f"error={e['error']}")
        line = " ".join(str(p) for p in parts if p)
        if self.show_payload and e.get("metadata"):
            meta = json.dumps(e["metadata"], default=str, sort_keys=True)
            line += ("\n    metadata=" if not self.compact else " metadata=") + meta
        return line

    def log_many(self, entries: list[dict[str, Any]]) -> None:
        out = []
        for e in entries:
            lvl = phase_level(e.get("phase", ""))
            if LEVELS[lvl] < self.threshold:
                continue
            line = self.format(e)
            colour = _COLOURS[lvl]
            out.append(click.style(line, fg=colour) if self.colour and colour else line)
        if out:
            self.stream.write("\n".join(out) + "\n")
            self.stream.flush()

    def close(self) -> None:
        pass
