"""Transforms: per-route steps that pass, drop, rewrite or split an event.

A transform plugin is a class constructed as ``cls(name, config, *, base_dir, state_dir)`` with
``apply(event, ctx) -> list[dict]`` (``[]`` drops, one event passes or rewrites, several split) and
``close()``. It raises :class:`TransformError` on failure; the caller applies the ``on_error`` policy
(``pass`` | ``drop`` | ``halt``).

A transform that keeps state about events in flight (``dedup``) may also define
``settle(route, seq, delivered)``: the runtime calls it once the route is finished with the event that
carried bus sequence number ``seq`` - ``delivered=True`` when the actor took it or a later transform
dropped it, ``False`` when it was dead-lettered. Events still in flight at shutdown are not settled
(they stay unacked on the bus and come back after the restart).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from orgloop.errors import OrgloopError

__all__ = ["TransformContext", "TransformError", "Transform", "ON_ERROR_POLICIES"]

ON_ERROR_POLICIES = ("pass", "drop", "halt")


class TransformError(OrgloopError):
    """A transform failed (timeout, crash, invalid output); ``on_error`` decides what happens."""


@dataclass(frozen=True, slots=True)
class TransformContext:
    """Where a transform runs. ``seq`` is the event's bus sequence number (0 when there is none, e.g. in
    ``orgloop test``): the same seq seen again is a redelivery of the same event, not a duplicate."""

    route: str
    source: str
    target: str
    seq: int = 0


class Transform(Protocol):
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path, state_dir: Path | None) -> None: ...
    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
