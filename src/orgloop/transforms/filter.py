"""``filter`` transform: keep or drop events by dot-path conditions.

Config: ``match`` (all must hold), ``match_any`` (at least one must hold), ``exclude`` (any that holds
drops the event). A condition is ``dot.path: value``: an exact value, a list (any of), ``"/re/flags"``
(a regular expression on the string value; flags ``i``, ``m``, ``s``), or ``null`` (missing or null).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from orgloop.transforms import TransformContext

__all__ = ["FilterTransform", "compile_condition"]

_MISSING = object()
_REGEX = re.compile(r"^/(.*)/([ims]*)$", re.S)
_FLAGS = {"i": re.I, "m": re.M, "s": re.S}


def _get(event: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(event, dict) and part in event:
            event = event[part]
        else:
            return _MISSING
    return event


def _value_test(want: Any, where: str) -> Callable[[Any], bool]:
    if want is None:
        return lambda v: v is _MISSING or v is None
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
    return lambda v: v is not _MISSING and isinstance(v, bool) == want_bool and v == want


def compile_condition(path: str, want: Any, where: str) -> Callable[[dict[str, Any]], bool]:
    parts = tuple(path.split("."))
    test = _value_test(want, f"{where}.{path}")
    return lambda event: test(_get(event, parts))


class FilterTransform:
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None) -> None:
        unknown = set(config) - {"match", "match_any", "exclude"}
        if unknown:
            raise ValueError(f"filter transform {name!r}: unknown config keys {sorted(unknown)} "
                             "(expected match, match_any, exclude)")
        self.name = name
        groups = {}
        for key in ("match", "match_any", "exclude"):
            spec = config.get(key) or {}
            if not isinstance(spec, dict):
                raise ValueError(f"filter transform {name!r}: {key} must be a mapping of dot.path: value")
            groups[key] = [compile_condition(p, w, f"{name}.{key}") for p, w in spec.items()]
        self._all, self._any, self._none = groups["match"], groups["match_any"], groups["exclude"]

    def keep(self, event: dict[str, Any]) -> bool:
        return (all(t(event) for t in self._all) and (not self._any or any(t(event) for t in self._any))
                and not any(t(event) for t in self._none))

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        return [event] if self.keep(event) else []

    def close(self) -> None:
        pass
