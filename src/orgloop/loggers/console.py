"""``console`` logger: compact human lines on stderr (colour only on a TTY).

Config: ``level`` (``debug`` | ``info`` | ``warn`` | ``error``, default ``info``). Per-event success
phases are ``debug``; matches and drops ``info``; retries and backpressure ``warn``; failures ``error``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import click

__all__ = ["ConsoleLogger", "phase_level", "LEVELS"]

LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}
_PHASE_LEVEL = {
    "deliver.attempt": "debug", "transform.start": "debug", "transform.pass": "debug", "source.emit": "debug",
    "deliver.success": "info", "route.match": "debug", "route.no_match": "debug", "transform.drop": "info",
    "runtime.start": "info", "runtime.stop": "info", "system.start": "info", "system.stop": "info",
    "breaker.close": "info", "deliver.retry": "warn", "pipeline.backpressure": "warn", "breaker.half_open": "warn",
    "transform.error": "warn", "transform.error_drop": "warn", "source.retry": "warn", "loop.detected": "warn",
    "deliver.failure": "error", "breaker.open": "error", "dlq.add": "error", "transform.error_halt": "error",
    "system.error": "error", "source.circuit_open": "error", "loop.circuit_broken": "error",
}
_COLOURS = {"debug": "bright_black", "info": None, "warn": "yellow", "error": "red"}


def phase_level(phase: str) -> str:
    return _PHASE_LEVEL.get(phase, "info")


class ConsoleLogger:
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 stream: TextIO | None = None) -> None:
        level = config.get("level", "info")
        if level not in LEVELS:
            raise ValueError(f"console logger {name!r}: level must be one of {', '.join(LEVELS)}")
        self.threshold = LEVELS[level]
        self.stream = stream or sys.stderr
        self.colour = self.stream.isatty()

    def format(self, e: dict[str, Any]) -> str:
        parts = [e.get("timestamp", "")[11:23], e["phase"]]
        for key in ("route", "source", "target", "transform", "event_type", "event_id", "result"):
            if e.get(key):
                parts.append(f"{key}={e[key]}")
        if e.get("duration_ms") is not None:
            parts.append(f"{e['duration_ms']:.1f}ms")
        if e.get("error"):
            parts.append(f"error={e['error']}")
        return " ".join(str(p) for p in parts if p)

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
