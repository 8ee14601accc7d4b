"""``enrich`` transform: add or rewrite fields of an event, without running code.

Config (each a mapping of destination dot-path to something; all optional, at least one):

* ``set``: a literal value; strings may hold ``{{dot.path}}`` placeholders filled from the event (the same
  syntax as ``then.config``; a missing value is empty text).
* ``copy``: a source dot-path; the value there is copied (nothing is written when it is missing).
* ``compute``: a value expression (``{concat: [...]}``, ``{add: [...]}``, ``{if: ..., then: ..., else:
  ...}`` and so on; see :mod:`orgloop.transforms.expr`).

Every value is read from the event as it arrived, then written in the order ``set``, ``copy``,
``compute`` (a later one wins on the same path). Intermediate mappings are created as needed; a path
through a value that is not a mapping is a :class:`~orgloop.transforms.TransformError` (``on_error``
decides). The event is copied along the written paths only; the input is never modified. A rewritten
top-level field (``type``, ``source``...) is checked as an event field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator, model_validator

from orgloop.event import EventError, validate_event
from orgloop.plugins import PluginConfig
from orgloop.prompts import render
from orgloop.transforms import TransformContext, TransformError
from orgloop.transforms import expr

__all__ = ["EnrichTransform", "EnrichConfig"]


def _check_paths(value: dict[str, Any], what: str) -> dict[str, Any]:
    for path in value:
        expr.compile_value({"path": path}, f"{what} destination")
    return value


class EnrichConfig(PluginConfig):
    """Settings of the ``enrich`` transform."""

    set: dict[str, Any] = Field(default_factory=dict, description="dot.path: value ({{dot.path}} filled)")
    copy_: dict[str, str] = Field(default_factory=dict, alias="copy", description="dot.path: source dot.path")
    compute: dict[str, Any] = Field(default_factory=dict, description="dot.path: value expression")

    @field_validator("set")
    @classmethod
    def _set_paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_paths(value, "set")

    @field_validator("copy_")
    @classmethod
    def _copy_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for source in value.values():
            expr.compile_value({"path": source}, "copy source")
        return _check_paths(value, "copy")

    @field_validator("compute")
    @classmethod
    def _compiles(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, spec in value.items():
            expr.compile_value(spec, f"compute.{path}")
        return _check_paths(value, "compute")

    @model_validator(mode="after")
    def _something(self) -> "EnrichConfig":
        if not (self.set or self.copy_ or self.compute):
            raise ValueError("enrich needs at least one of set, copy, compute")
        return self


def _setter(value: Any) -> Callable[[dict[str, Any]], Any]:
    """``set`` values: strings (also inside lists and mappings) have their placeholders filled."""
    if isinstance(value, str):
        return (lambda e: render(value, e)) if "{{" in value else (lambda e: value)
    if isinstance(value, dict):
        parts = {k: _setter(v) for k, v in value.items()}
        return lambda e: {k: p(e) for k, p in parts.items()}
    if isinstance(value, list):
        items = [_setter(v) for v in value]
        return lambda e: [i(e) for i in items]
    return lambda e: value


def _copier(source: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    return lambda e: expr.get_path(e, source)


class EnrichTransform:
    config_model = EnrichConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None) -> None:
        cfg = EnrichConfig.model_validate(config)
        self.name = name
        writes: list[tuple[tuple[str, ...], Callable[[dict[str, Any]], Any]]] = []
        writes += [(tuple(p.split(".")), _setter(v)) for p, v in cfg.set.items()]
        copies = [(tuple(p.split(".")), tuple(src.split("."))) for p, src in cfg.copy_.items()]
        writes += [(dest, _copier(src)) for dest, src in copies]
        writes += [(tuple(p.split(".")), expr.compile_value(spec, f"compute.{p}")) for p, spec in cfg.compute.items()]
        self._writes = writes
        self._top_level = any(len(path) == 1 for path, _ in writes)

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        values = [(path, read(event)) for path, read in self._writes]      # all reads see the input
        out = dict(event)
        copied: set[tuple[str, ...]] = set()
        for path, value in values:
            if value is not expr.MISSING:
                self._put(out, path, value, copied)
        if self._top_level:
            try:
                validate_event(out)
            except EventError as exc:
                raise TransformError(f"enrich {self.name}: the result is not a valid event: {exc}") from None
        return [out]

    def _put(self, out: dict[str, Any], path: tuple[str, ...], value: Any, copied: set[tuple[str, ...]]) -> None:
        node = out
        for depth, part in enumerate(path[:-1], 1):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise TransformError(f"enrich {self.name}: cannot write {'.'.join(path)}: "
                                     f"{'.'.join(path[:depth])} is not a mapping")
            if path[:depth] not in copied:             # copy each mapping on the way once, never the input's
                child = dict(child)
                copied.add(path[:depth])
            node[part] = child
            node = child
        node[path[-1]] = value

    def close(self) -> None:
        pass
