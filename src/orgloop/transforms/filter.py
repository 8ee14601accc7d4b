"""``filter`` transform: keep or drop events by dot-path conditions.

Config: ``match`` (all must hold), ``match_any`` (at least one must hold), ``exclude`` (any that holds
drops the event). A condition is ``dot.path: value``: an exact value, a list (any of), ``"/re/flags"``
(a regular expression on the string value; flags ``i``, ``m``, ``s``), or ``null`` (missing or null).
``where`` adds one expression condition (and, or, not, ``in``, numeric comparisons...; see
:mod:`orgloop.transforms.expr`) that must hold too.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator

from orgloop.plugins import PluginConfig
from orgloop.transforms import TransformContext
from orgloop.transforms import expr

__all__ = ["FilterTransform", "FilterConfig", "compile_match"]

_REGEX = re.compile(r"^/(.*)/([ims]*)$", re.S)
_FLAGS = {"i": re.I, "m": re.M, "s": re.S}


def _value_test(want: Any, where: str) -> Callable[[Any], bool]:
    if want is None:
        return lambda v: v is expr.MISSING or v is None
    if isinstance(want, list):
        tests = [_value_test(w, where) for w in want]
        return lambda v: any(t(v) for t in tests)
    if isinstance(want, str):
        m = _REGEX.match(want)
        if m:
            try:
                rx = re.compile(m.group(1), sum(_FLAGS[f] for f in m.group(2)))
            except re.error as exc:
                raise ValueError(f"{where}: invalid regular expression {want!r}: {exc}") from None
            return lambda v: isinstance(v, str) and rx.search(v) is not None
    want_bool = isinstance(want, bool)   # strict: true never equals 1
    return lambda v: v is not expr.MISSING and isinstance(v, bool) == want_bool and v == want


def compile_match(path: str, want: Any, where: str) -> Callable[[dict[str, Any]], bool]:
    """One ``dot.path: value`` condition of ``match``, ``match_any`` or ``exclude``."""
    parts = tuple(path.split("."))
    test = _value_test(want, f"{where}.{path}")
    return lambda event: test(expr.get_path(event, parts))


class FilterConfig(PluginConfig):
    """Settings of the ``filter`` transform (all optional; no condition keeps every event)."""

    match: dict[str, Any] = Field(default_factory=dict, description="dot.path: value; all must hold")
    match_any: dict[str, Any] = Field(default_factory=dict, description="dot.path: value; one must hold")
    exclude: dict[str, Any] = Field(default_factory=dict, description="dot.path: value; any that holds drops")
    where: dict[str, Any] | None = Field(None, description="an expression condition: {all|any: [...]}, "
                                                           "{not: ...}, {path: a.b, gt|in|matches...: x}")

    @field_validator("match", "match_any", "exclude")
    @classmethod
    def _compiles(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, want in value.items():
            compile_match(path, want, "condition")
        return value

    @field_validator("where")
    @classmethod
    def _where_compiles(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            expr.compile_condition(value, "where")
        return value


class FilterTransform:
    config_model = FilterConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None) -> None:
        cfg = FilterConfig.model_validate(config)
        self.name = name
        self._all = [compile_match(p, w, f"{name}.match") for p, w in cfg.match.items()]
        self._any = [compile_match(p, w, f"{name}.match_any") for p, w in cfg.match_any.items()]
        self._none = [compile_match(p, w, f"{name}.exclude") for p, w in cfg.exclude.items()]
        self._where = expr.compile_condition(cfg.where) if cfg.where is not None else None

    def keep(self, event: dict[str, Any]) -> bool:
        return (all(t(event) for t in self._all) and (not self._any or any(t(event) for t in self._any))
                and not any(t(event) for t in self._none) and (self._where is None or self._where(event)))

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        return [event] if self.keep(event) else []

    def close(self) -> None:
        pass
