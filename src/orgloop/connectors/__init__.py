"""Sources and actors: the edges of the pipeline.

A source plugin is ``cls(source_id, config, *, base_dir)`` with
``poll(checkpoint, max_events) -> (events, new_checkpoint)`` and ``close()``. The runtime publishes the
events durably and only then stores the new checkpoint. After a poll that returned no events the runtime
waits the source's poll interval, or, when the source has ``poll_delay(interval) -> seconds``, what that
returns (a cron source waits for its next tick; an API poller waits out a rate limit without a request).

An actor plugin is ``cls(actor_id, config, *, base_dir)`` with
``deliver(event, prompt, config) -> list[dict] | None`` (raising :class:`DeliveryError` on failure) and
``close()``. Events it returns are its follow-ups: the runtime gives each the trace id of the event that
caused it (:func:`orgloop.event.adopt`; ``source`` defaults to the actor id) and makes them durable on the
bus before the cause counts as delivered, so a crash cannot lose them.
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
    def deliver(self, event: dict[str, Any], prompt: str | None,
                config: dict[str, Any]) -> list[dict[str, Any]] | None: ...
    def close(self) -> None: ...
