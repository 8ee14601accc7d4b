"""orgloop: an embedded event-routing engine built on a fast, crash-safe write-ahead log.

The main types are importable from the package itself; each is loaded on first use, so
``import orgloop`` stays cheap for the command line::

    import orgloop
    spec = orgloop.RuntimeSpec(sources=[...], actors=[...], routes=[...], data_dir=path)
    runtime = orgloop.Runtime(spec).start()
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# public name -> the module that defines it
_EXPORTS = {
    "Runtime": "orgloop.runtime",
    **{name: "orgloop.spec" for name in ("RuntimeSpec", "SourceSpec", "ActorSpec", "RouteSpec", "TransformSpec",
                                         "TransformRef", "DeliverySpec", "RetrySpec", "BreakerSpec", "LoggerSpec")},
    **{name: "orgloop.bus" for name in ("EventBus", "EventFilter", "Subscription", "InMemoryBus", "FileWalBus",
                                        "open_bus")},
    "Wal": "orgloop.wal",
    **{name: "orgloop.event" for name in ("new_event", "follow_up", "validate_event", "EventError")},
    "DeliveryError": "orgloop.connectors",
    "TransformError": "orgloop.transforms",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    __version__: str
    from orgloop.bus import EventBus, EventFilter, FileWalBus, InMemoryBus, Subscription, open_bus
    from orgloop.connectors import DeliveryError
    from orgloop.event import EventError, follow_up, new_event, validate_event
    from orgloop.runtime import Runtime
    from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, LoggerSpec, RetrySpec, RouteSpec, RuntimeSpec,
                              SourceSpec, TransformRef, TransformSpec)
    from orgloop.transforms import TransformError
    from orgloop.wal import Wal


def _package_version() -> str:
    """The installed version (read on first use: importlib.metadata costs ~80 ms, `orgloop --help` less)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("orgloop")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _package_version()
        return value
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orgloop' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
