"""Plugins by name: sources, actors, transforms, loggers and buses.

Built-ins register exactly like third-party plugins, through entry points
(``orgloop.sources``, ``orgloop.actors``, ``orgloop.transforms``, ``orgloop.loggers``,
``orgloop.buses``); classes are imported only when first used. OrgLoop package names such as
``@orgloop/connector-github`` resolve by their last part (``github``).
"""
from __future__ import annotations

from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["KINDS", "PluginError", "PluginConfig", "config_model", "plugin_name", "available", "load",
           "register"]

KINDS = ("sources", "actors", "transforms", "loggers", "buses")
_PREFIXES = ("connector-", "transform-", "logger-", "bus-")
_registered: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}


class PluginError(LookupError):
    """No plugin of that kind and name is installed, or two claim the same name."""


class PluginConfig(BaseModel):
    """Base of every plugin's config model (the plugin class names it as ``config_model``).

    Unknown keys are errors, so ``orgloop validate`` catches a misspelt setting at file:line:col.
    A field typed :class:`pydantic.SecretStr` is a secret: it is masked in ``plan``, logs and
    ``status``, and only the plugin reads its value (``.get_secret_value()``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def config_model(plugin_class: Any) -> type[BaseModel] | None:
    """The pydantic model a plugin class declares for its ``config`` (None: it takes any mapping)."""
    model = getattr(plugin_class, "config_model", None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def plugin_name(name: str) -> str:
    """Map ``@orgloop/connector-github`` (or ``connector-github``) to ``github``; bare names pass through."""
    last = name.rsplit("/", 1)[-1]
    for prefix in _PREFIXES:
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; expected one of {', '.join(KINDS)}")


@lru_cache(maxsize=None)
def _entry_points(kind: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=f"orgloop.{kind}"):
        if ep.name in found and found[ep.name].value != ep.value:
            raise PluginError(
                f"two {kind} plugins are named {ep.name!r}: {found[ep.name].value} and {ep.value}")
        found[ep.name] = ep
    return found


def available(kind: str) -> list[str]:
    """Names of every installed plugin of ``kind``."""
    _check_kind(kind)
    return sorted(set(_entry_points(kind)) | set(_registered[kind]))


def register(kind: str, name: str, obj: Any) -> None:
    """Register a plugin in-process (tests and embedding); a duplicate name is rejected."""
    _check_kind(kind)
    if name in _registered[kind] or name in _entry_points(kind):
        raise PluginError(f"a {kind[:-1]} plugin named {name!r} is already registered")
    _registered[kind][name] = obj


def load(kind: str, name: str) -> Any:
    """Import and return the plugin class for ``name`` (package names accepted)."""
    _check_kind(kind)
    short = plugin_name(name)
    if short in _registered[kind]:
        return _registered[kind][short]
    ep = _entry_points(kind).get(short)
    if ep is None:
        known = ", ".join(available(kind)) or "none"
        raise PluginError(f"no {kind[:-1]} plugin named {name!r} is installed (installed: {known})")
    return ep.load()
