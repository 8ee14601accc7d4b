"""Sources and actors: the edges of the pipeline.

A source plugin is ``cls(source_id, config, *, base_dir)`` with
``poll(checkpoint, max_events) -> (events, new_checkpoint)`` and ``close()``. The runtime publishes the
events durably and only then stores the new checkpoint.

An actor plugin is ``cls(actor_id, config, *, base_dir)`` with
``deliver(event, prompt, config) -> None`` (raising :class:`DeliveryError` on failure) and ``close()``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from orgloop.errors import OrgloopError

__all__ = ["DeliveryError", "Source", "Actor"]


class DeliveryError(OrgloopError):
    """An actor could not take an event; delivery policy (retry, breaker, dead letters) decides next."""


class Source(Protocol):
    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]: ...
    def close(self) -> None: ...


class Actor(Protocol):
    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None: ...
    def close(self) -> None: ...
