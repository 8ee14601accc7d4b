"""The EventBus: the one seam between sources and the router (spec: "swapping the event bus is a
one-line config change").

A bus assigns each published event a sequence number, makes it durable under its own guarantee, and
hands events to subscribers in batches on its dispatch thread. ``ack`` tells the bus an event is fully
handled (delivered or dead-lettered on every route); ``unacked`` lists what is not.

Implementations register as ``orgloop.buses`` entry points: ``memory`` (:class:`InMemoryBus`) and
``filewal`` (:class:`FileWalBus`); a bus class declares ``config_model`` for its ``runtime.bus_options``. Every bus must pass ``tests/bus/conformance.py``.
"""
from __future__ import annotations

from orgloop.bus.base import BusBase, BusClosedError, EventFilter, Handler, Subscription, escape_token
from orgloop.bus.filewal import FileWalBus
from orgloop.bus.memory import InMemoryBus

__all__ = ["EventBus", "BusBase", "BusClosedError", "EventFilter", "Handler", "Subscription", "InMemoryBus", "FileWalBus",
           "open_bus", "bus_namespace"]

#: The bus contract by its spec name: every bus is a :class:`BusBase`.
EventBus = BusBase


def bus_namespace(name: str, workspace: str) -> str:
    """The shared namespace of a project's workspace on a server bus: ``<name>.<workspace>``, each part escaped
    by :func:`~orgloop.bus.base.escape_token`, so it is a valid NATS subject token,
    Kafka topic name part and Redis key part, and distinct inputs never collide.

    >>> bus_namespace("my.org", "default")
    'my_2eorg.default'
    """
    return f"{escape_token(name)}.{escape_token(workspace)}"


def open_bus(kind: str, **options) -> BusBase:
    """Create a bus by its plugin name (``memory``, ``filewal`` or an installed plugin). A bus class that
    declares a ``config_model`` gets its options checked against it first, and receives them parsed
    (durations in seconds, sizes in bytes); a mismatch raises :class:`~orgloop.plugins.PluginConfigError`."""
    from pydantic import ValidationError

    from orgloop import plugins

    cls = plugins.load("buses", kind)
    model = plugins.config_model(cls)
    if model is not None:
        try:
            parsed = model.model_validate(options)
        except ValidationError as exc:
            raise plugins.PluginConfigError(f"bus {kind!r}: invalid bus_options: {plugins.config_errors(exc)}") from None
        options = {name: getattr(parsed, name) for name in parsed.model_fields_set}
    return cls(**options)
