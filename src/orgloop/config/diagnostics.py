"""Problems found in project files, as ``file:line:col: error|warning: message``.

Schema errors from pydantic become one diagnostic each, placed at the YAML node they concern (the key
for an unknown key, the enclosing mapping for a missing one), with "did you mean" suggestions.
"""
from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

from pydantic import BaseModel, ValidationError

from orgloop.config.yamlfile import YamlDocument

__all__ = ["Diagnostic", "Severity", "Locator", "from_validation_error", "did_you_mean"]

Severity = Literal["error", "warning"]
Locator = Callable[[tuple[Any, ...], str], tuple[YamlDocument, tuple[Any, ...]]]
"""Maps an error's location and pydantic error type to the document (and location in it) to report in."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem at a 1-based line and column of a file."""

    file: Path
    line: int
    column: int
    severity: Severity
    message: str

    def display_file(self, root: Path | None = None) -> str:
        """The file path relative to ``root`` when it lies inside it, else as stored."""
        return _display(self.file, root)

    def format(self, root: Path | None = None) -> str:
        """``file:line:col: severity: message``."""
        return f"{_display(self.file, root)}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """The same fields as a JSON-ready mapping."""
        return {"file": _display(self.file, root), "line": self.line, "column": self.column,
                "severity": self.severity, "message": self.message}


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.relative_to(root))
        except ValueError:
            pass
    return str(path)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close candidate exists, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unwrap(annotation: Any) -> Any:
    """The model class (or None) that values at the next path step are validated against."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _unwrap(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(model: type[BaseModel] | None, loc: Sequence[Any]) -> type[BaseModel] | None:
    """Walk the model classes along ``loc`` (list indexes and dict keys pass through containers)."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        annotation = field.annotation
        origin = typing.get_origin(annotation)
        while origin in (list, dict) or origin in (typing.Union, types.UnionType) and not _unwrap(annotation):
            args = typing.get_args(annotation)
            annotation = args[-1] if args else None
            origin = typing.get_origin(annotation)
        model = _unwrap(annotation)
    return model


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _message(error: dict[str, Any], model: type[BaseModel], where: str, hide_input: bool = False) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        hint = did_you_mean(str(loc[-1]), _keys(parent)) if parent else ""
        return f"unknown key {loc[-1]!r}{(' in ' + where) if where else ''}{hint}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}{(' in ' + where) if where else ''}"
    text = error["msg"]
    if text.startswith("Value error, "):
        text = text[len("Value error, "):]
    elif text.startswith("Input should be"):
        text = "expected " + text[len("Input should be "):] + ("" if hide_input else f", got {_show(error.get('input'))}")
    elif text.startswith("String should match pattern"):
        text = f"invalid name {error.get('input')!r}: use letters, digits and _ . : @ / - (max 128)"
    return f"{where}: {text}" if where else text


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping" if value else "an empty mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


def _where(loc: Sequence[Any], missing_or_extra: bool) -> str:
    parts = loc[:-1] if missing_or_extra else loc
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _in_data(data: Any, loc: Sequence[Any]) -> int:
    """How many leading parts of ``loc`` exist in ``data``; pydantic appends the member names of a union
    (``str``, ``int``...) to the location of each member's error, and those do not."""
    for depth, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return depth
    return len(loc)


UNION_TAGS = ("file", "inline")
"""Tags of the tagged unions in the models (a list entry that is a file path or an inline item); pydantic
puts the tag into an error's location, where the data has no such key."""


def _drop_tags(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for part in loc:
        if part in UNION_TAGS and not (isinstance(data, dict) and part in data):
            continue
        out.append(part)
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            data = None
    return tuple(out)


def _merge_union_errors(errors: list[Any], data: Any) -> list[dict[str, Any]]:
    """One error per value: the errors of every member of a union become one 'expected A or B'."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for error in errors:
        loc = tuple(error["loc"])
        depth = _in_data(data, loc) if error["type"] not in ("missing", "extra_forbidden") else len(loc)
        if depth == len(loc):
            out.append(error)
            continue
        value_loc = loc[:depth]
        text = error["msg"]
        expected = text[len("Input should be "):] if text.startswith("Input should be ") else text
        if value_loc in merged:
            if expected not in merged[value_loc]["expected"]:
                merged[value_loc]["expected"].append(expected)
            continue
        merged[value_loc] = entry = {**error, "loc": value_loc, "type": "union", "expected": [expected]}
        out.append(entry)
    for entry in merged.values():
        *others, last = entry.pop("expected")
        entry["msg"] = "Input should be " + (f"{', '.join(others)} or {last}" if others else last)
    return out


def from_validation_error(exc: ValidationError, model: type[BaseModel], doc: YamlDocument,
                          prefix: Sequence[Any] = (), locate: Locator | None = None,
                          data: Any = None, secret: Callable[[tuple[Any, ...]], bool] | None = None
                          ) -> list[Diagnostic]:
    """One diagnostic per schema error, placed in ``doc`` (``prefix``: where the validated value sits), or
    wherever ``locate`` says the value came from. With the validated ``data``, the errors of the members
    of a union are reported as one. ``secret(loc)`` true: the message does not quote the value at ``loc``
    (relative to the validated value)."""
    errors: list[Any] = exc.errors(include_url=False)
    if data is not None:
        errors = _merge_union_errors([{**e, "loc": _drop_tags(tuple(e["loc"]), data)} for e in errors], data)
    out = []
    for error in errors:
        loc = tuple(prefix) + tuple(error["loc"])
        kind = error["type"]
        is_key = kind in ("extra_forbidden", "missing")
        target, at = locate(loc, kind) if locate is not None else (doc, loc)
        pos = target.position(at[:-1] if kind == "missing" else at, key=kind == "extra_forbidden")
        hide = secret is not None and secret(tuple(error["loc"]))
        message = _message(error, model, _where(loc, is_key), hide)
        out.append(Diagnostic(target.path, pos.line, pos.column, "error", message))
    return out
