"""Plugins by name: sources, actors, transforms, loggers and buses.

Built-ins register exactly like third-party plugins, through entry points
(``orgloop.sources``, ``orgloop.actors``, ``orgloop.transforms``, ``orgloop.loggers``,
``orgloop.buses``); classes are imported only when first used. OrgLoop package names such as
``@orgloop/connector-github`` resolve by their last part (``github``).

Each plugin class declares its settings as a :class:`PluginConfig` subclass in ``config_model``:
``orgloop validate`` checks every ``config`` (and ``runtime.bus_options``) against it at file:line:col,
``orgloop schema`` publishes it, and fields typed :class:`pydantic.SecretStr` are masked wherever a
configuration is shown (:func:`mask_secrets`). The interfaces of each kind are documented in
:mod:`orgloop.connectors`, :mod:`orgloop.transforms`, :mod:`orgloop.loggers` and :mod:`orgloop.bus`.
"""
from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any, Callable

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretBytes, SecretStr, ValidationError, WithJsonSchema

from orgloop.errors import ConfigError
from orgloop.units import DURATION_PATTERN, parse_duration, parse_size

__all__ = ["KINDS", "SINGULAR", "PluginError", "PluginConfigError", "PluginConfig", "PluginInfo", "Duration", "Size",
           "config_model", "plugin_name", "available", "load", "create", "register", "describe",
           "distribution_hint", "KNOWN_DISTRIBUTIONS", "mask_secrets", "config_errors"]

KINDS = ("sources", "actors", "transforms", "loggers", "buses")
SINGULAR = {"sources": "source", "actors": "actor", "transforms": "transform", "loggers": "logger", "buses": "bus"}
_PREFIXES = ("connector-", "transform-", "logger-", "bus-")
_registered: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}

#: Plugins orgloop does not ship, by (kind, name), and the Python distribution that provides each.
KNOWN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("transforms", "stamp"): "orgloop-plugin-example",
    ("actors", "memo"): "orgloop-plugin-example",
}


class PluginError(LookupError):
    """No plugin of that kind and name is installed, or two claim the same name."""


class PluginConfigError(ConfigError):
    """A plugin's settings do not match its ``config_model`` (the message never holds the values)."""


class PluginConfig(BaseModel):
    """Base of every plugin's config model (the plugin class names it as ``config_model``).

    Unknown keys are errors, so ``orgloop validate`` catches a misspelt setting at file:line:col.
    A field typed :class:`pydantic.SecretStr` is a secret: it is masked in ``plan``, logs and
    ``status``, and only the plugin reads its value (``.get_secret_value()``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


def _bytes(value: Any) -> Any:
    return parse_size(value) if isinstance(value, str) else value


#: A duration setting (``"30s"``, ``"5m"``) parsed to seconds; the schema shows the string form.
Duration = Annotated[float, BeforeValidator(_seconds),
                     WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN,
                                     "description": "a duration: 500ms, 30s, 5m, 1h, 7d"})]
#: A size setting (``"100MB"`` or a byte count) parsed to bytes.
Size = Annotated[int, BeforeValidator(_bytes),
                 WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0},
                                           {"type": "string", "pattern": r"^\d+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$"}],
                                 "description": "a size: 100MB, 64KiB, or bytes"})]


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
        raise PluginError(f"a {SINGULAR[kind]} plugin named {name!r} is already registered")
    _registered[kind][name] = obj


def distribution_hint(kind: str, name: str) -> str:
    """`` (provided by the Python distribution 'x': pip install x)`` for a known plugin, else ``""``."""
    dist = KNOWN_DISTRIBUTIONS.get((kind, plugin_name(name)))
    return f" (provided by the Python distribution {dist!r}: pip install {dist})" if dist else ""


def load(kind: str, name: str) -> Any:
    """Import and return the plugin class for ``name`` (package names accepted)."""
    _check_kind(kind)
    short = plugin_name(name)
    if short in _registered[kind]:
        return _registered[kind][short]
    ep = _entry_points(kind).get(short)
    if ep is None:
        known = ", ".join(available(kind)) or "none"
        raise PluginError(f"no {SINGULAR[kind]} plugin named {name!r} is installed{distribution_hint(kind, name)} "
                          f"(installed: {known})")
    return ep.load()


def config_errors(exc: ValidationError) -> str:
    """A pydantic error as ``loc: message; ...`` without the input values (which may be secrets)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def create(kind: str, name: str, *args: Any, **kwargs: Any) -> Any:
    """Load plugin ``name`` of ``kind`` and construct it with ``args``; a config that does not match the
    plugin's model raises :class:`PluginConfigError` naming the plugin and the fields (never the values)."""
    cls = load(kind, name)
    try:
        return cls(*args, **kwargs)
    except ValidationError as exc:
        what = args[0] if args and isinstance(args[0], str) else name
        label = f"{SINGULAR[kind]} {what!r}"
        raise PluginConfigError(f"{label} ({plugin_name(name)}): invalid config: {config_errors(exc)}") from None


# --------------------------------------------------------------------------- secrets
def _is_secret(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_secret(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, (SecretStr, SecretBytes))


def _mask(annotation: Any, value: Any, mark: Callable[[Any], Any]) -> Any:
    if value is None:
        return None
    if _is_secret(annotation):
        return mark(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _mask(args[0], value, mark)
    if origin in (typing.Union, types.UnionType):
        for arg in args:             # the first member that can hold this shape of value
            inner = typing.get_origin(arg) or arg
            if (isinstance(value, dict) and (inner is dict or isinstance(inner, type) and issubclass(inner, BaseModel))
                    or isinstance(value, list) and inner is list):
                return _mask(arg, value, mark)
        return value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
        fields = {(f.alias or n): f for n, f in annotation.model_fields.items()}
        fields.update({n: f for n, f in annotation.model_fields.items()})
        return {k: _mask(fields[k].annotation, v, mark) if k in fields else v for k, v in value.items()}
    if origin in (list, tuple, set, frozenset) and isinstance(value, list) and args:
        return [_mask(args[0], v, mark) for v in value]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return {k: _mask(args[1], v, mark) for k, v in value.items()}
    return value


def mask_secrets(model: type[BaseModel] | None, config: Any, mark: Callable[[Any], Any]) -> Any:
    """``config`` (as written) with the value of every field ``model`` types as a secret replaced by
    ``mark(value)``; keys the model does not know are kept as they are. A copy; ``config`` is unchanged."""
    return config if model is None else _mask(model, config, mark)


# --------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin, as ``orgloop plugins`` lists it."""

    kind: str
    name: str
    target: str                 # module:attribute
    distribution: str | None    # the Python distribution that provides it (None: registered in-process)
    version: str | None
    config_model: str | None    # the model's class name, None when the plugin takes any mapping

    def to_json(self) -> dict[str, Any]:
        return {"kind": SINGULAR[self.kind], "name": self.name, "target": self.target,
                "distribution": self.distribution, "version": self.version, "config_model": self.config_model}


def describe(kind: str) -> list[PluginInfo]:
    """Every installed plugin of ``kind`` with its distribution and version (imports each class)."""
    _check_kind(kind)
    out = []
    for name in available(kind):
        dist = version = None
        if name in _registered[kind]:
            obj = _registered[kind][name]
            target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
        else:
            ep = _entry_points(kind)[name]
            target = ep.value
            if ep.dist is not None:
                dist, version = ep.dist.name, ep.dist.version
            try:
                obj = ep.load()
            except Exception as exc:  # a broken third-party plugin is listed, not fatal
                out.append(PluginInfo(kind, name, target, dist, version, f"(cannot import: {exc})"))
                continue
        model = config_model(obj)
        out.append(PluginInfo(kind, name, target, dist, version, model.__name__ if model else None))
    return out
