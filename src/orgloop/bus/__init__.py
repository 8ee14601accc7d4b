"""The EventBus: the one seam between sources and the router (spec: "swapping the event bus is a
one-line config change").

A bus assigns each published event a sequence number, makes it durable under its own guarantee, and
hands events to subscribers in batches on its dispatch thread. ``ack`` tells the bus an event is fully
handled (delivered or dead-lettered on every route); ``unacked`` lists what is not.

Implementations register as ``orgloop.buses`` entry points: ``memory`` (:class:`InMemoryBus`) and
``filewal`` (:class:`FileWalBus`). Every bus must pass ``tests/bus/conformance.py``.
"""
from __future__ import annotations

from orgloop.bus.base import BusBase, BusClosedError, EventFilter, Handler, Subscription
from orgloop.bus.filewal import FileWalBus
from orgloop.bus.memory import InMemoryBus

__all__ = ["EventBus", "BusBase", "BusClosedError", "EventFilter", "Handler", "Subscription", "InMemoryBus", "FileWalBus",
           "open_bus", "bus_namespace"]

#: The bus contract by its spec name: every bus is a :class:`BusBase`.
EventBus = BusBase


def bus_namespace(name: str, workspace: str) -> str:
    """The shared namespace of a project's workspace on a server bus: ``<name>.<workspace>`` with every
    character outside ``[A-Za-z0-9_-]`` escaped as ``_xx`` (hex), so it is a valid NATS subject token,
    Kafka topic name part and Redis key part, and distinct inputs never collide.

    >>> bus_namespace("my.org", "default")
    'my_2eorg.default'
    """
    def esc(part: str) -> str:
        return "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):02x}" for c in part)
    return f"{esc(name)}.{esc(workspace)}"


def open_bus(kind: str, **options) -> BusBase:
    """Create a bus by its plugin name (``memory``, ``filewal`` or an installed plugin)."""
    from orgloop import plugins

    return plugins.load("buses", kind)(**options)
