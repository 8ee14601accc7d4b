"""Sources and actors: the edges of the pipeline.

A source plugin is ``cls(source_id, config, *, base_dir)`` with
``poll(checkpoint, max_events) -> (events, new_checkpoint)`` and ``close()``. The runtime publishes the
events durably and only then stores the new checkpoint. After a poll that returned no events the runtime
waits the source's poll interval, or, when the source has ``poll_delay(interval) -> seconds``, what that
returns (a cron source waits for its next tick; an API poller waits out a rate limit without a request).

An actor plugin is ``cls(actor_id, config, *, base_dir)`` with
``deliver(event, prompt, config) -> list[dict] | None`` (raising :class:`DeliveryError` on failure) and
``close()``; optionally ``interrupt()``, which ends deliveries still running when the shutdown's drain
deadline passes (they raise :class:`DeliveryInterrupted`). Events it returns are its follow-ups: the
runtime gives each the trace id of the event that caused it (:func:`orgloop.event.adopt`; ``source`` defaults to the actor id) and
makes them durable on the bus before the cause counts as delivered, so a crash cannot lose them.

A **push source** (webhook-style: ``webhook``, ``github-webhook``, ``linear-webhook``, ``claude-code``) is
not polled. Its class sets ``push = True``; the runtime mounts it on the shared ingress listener
(:mod:`orgloop.connectors.ingress`) at ``/webhook/<source-id>`` and at its ``path`` (None: no extra
path). For each POST the listener reads the body (size limit, read deadline), then calls
``handle(request: PushRequest) -> list[event]``; the source verifies the request (raising
:class:`~orgloop.connectors.ingress.IngressError` with an HTTP status and a message) and builds the events.
The listener makes them durable on the bus and only then answers ``200`` with ``answer(events)`` as the JSON
body. :class:`~orgloop.connectors.ingress.PushSourceBase` does the shared part (HMAC check, ``path``,
``max_body``); its config model :class:`~orgloop.connectors.ingress.PushConfig` holds ``secret`` as a
``SecretStr``. Push sources keep no checkpoint: the bus is their buffer.

Every plugin class declares ``config_model`` (a :class:`orgloop.plugins.PluginConfig` subclass) and
validates its ``config`` with it in its constructor.

A :class:`DeliveryError` may carry hints for the delivery lane: ``retryable=False`` (the target refused
the event for good, e.g. an HTTP 4xx: no retry, straight to dead letters) and ``retry_after`` (seconds
the target asked to wait, e.g. HTTP ``Retry-After``: the next retry waits at least that long).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from orgloop.errors import OrgloopError

__all__ = ["DeliveryError", "DeliveryInterrupted", "Source", "PushSource", "Actor"]


class DeliveryError(OrgloopError):
    """An actor could not take an event; delivery policy (retry, breaker, dead letters) decides next.

    ``retryable=False``: retrying cannot help (the event goes to dead letters at once).
    ``retry_after``: the target asked for at least this many seconds before the next attempt.
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class DeliveryInterrupted(DeliveryError):
    """The runtime ended a delivery in progress (``Actor.interrupt`` at shutdown). It is neither a failure
    nor a success: the event stays unacked and is delivered again after the next start."""


class Source(Protocol):
    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]: ...
    def close(self) -> None: ...


class PushSource(Protocol):
    """A source that receives HTTP posts on the shared ingress listener instead of being polled."""

    push: bool            # True
    id: str
    path: str | None      # an extra mount path besides /webhook/<id>
    max_body: int         # bytes; larger bodies are refused with 413 before they are read

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def handle(self, request: Any) -> list[dict[str, Any]]: ...
    def answer(self, events: list[dict[str, Any]]) -> dict[str, Any]: ...
    def close(self) -> None: ...


class Actor(Protocol):
    """Receives events. ``deliver`` gets the route's rendered prompt and ``then.config``; routes of one actor
    with equal configs share one dict, so an actor reads ``config`` and never changes it."""

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None: ...
    def deliver(self, event: dict[str, Any], prompt: str | None,
                config: dict[str, Any]) -> list[dict[str, Any]] | None: ...
    def close(self) -> None: ...
