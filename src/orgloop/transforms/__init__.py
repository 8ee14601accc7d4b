"""Transforms: per-route steps that pass, drop, rewrite or split an event.

A transform plugin is a class constructed as ``cls(name, config, *, base_dir, state_dir)`` (it declares
``config_model``, a :class:`orgloop.plugins.PluginConfig`, and validates ``config`` with it) with
``apply(event, ctx) -> list[dict]`` (``[]`` drops, one event passes or rewrites, several split) and
``close()``. It raises :class:`TransformError` on failure; the caller applies the ``on_error`` policy
(``pass`` | ``drop`` | ``halt``).

A transform that keeps state about events in flight (``dedup``) appends a *claim* to ``ctx.claims``
when an event passes: a callable ``claim(delivered: bool, durable: Callable[[], None])``. The router
follows each claim through the rest of the route's transforms (splits included) and calls it once, when
every delivery that came out of that event is finished: ``delivered=True`` when the actor took them all
(or a later transform dropped them), ``False`` when any was dead-lettered or halted. The transform calls
``durable()`` once what it records about that outcome is persisted (at once if nothing is): the event is
acked on the bus only then, so a crash never leaves an acked event without its mark. Events still in flight at shutdown are not settled
(they stay unacked on the bus and come back after the restart). ``ctx.claims`` is None when no outcome
will be reported (``orgloop test``): a stateful transform then records its effect at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from orgloop.errors import OrgloopError

__all__ = ["TransformContext", "TransformError", "Transform", "ON_ERROR_POLICIES"]

ON_ERROR_POLICIES = ("pass", "drop", "halt")


class TransformError(OrgloopError):
    """A transform failed (timeout, crash, invalid output); ``on_error`` decides what happens."""


@dataclass(frozen=True, slots=True)
class TransformContext:
    """Where a transform runs. ``seq`` is the event's bus ref (0 when there is none, e.g. in
    ``orgloop test``): the same seq seen again is a redelivery of the same event, not a duplicate.
    ``claims``: where a stateful transform appends its claims (see the module docstring)."""

    route: str
    source: str
    target: str
    seq: Any = 0
    claims: list[Callable[[bool, Callable[[], None]], None]] | None = None


class Transform(Protocol):
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path, state_dir: Path | None) -> None: ...
    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
