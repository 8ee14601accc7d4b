"""``${VAR}`` substitution in string values, and the ``.env`` file beside ``orgloop.yaml``.

``${VAR}`` takes the variable (an unset one is an error naming it; every unset variable of a string is
named in one error); ``${VAR:-default}`` falls back to the default when the variable is unset or empty,
and the default may itself hold references (``${A:-${B:-c}}``); ``$${`` is a literal ``${``. Only string
values are substituted, after parsing, so a variable can never inject YAML structure.

Precedence: the shell environment, then the workspace's ``variables``, then ``.env``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

__all__ = ["substitute", "read_dotenv", "VariableError", "DotenvError"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"\$\$\{|\$\{|\}")
_Parts = list["str | _Ref"]


class VariableError(ValueError):
    """A ``${...}`` reference names an unset variable or is malformed."""


class DotenvError(VariableError):
    """A line of ``.env`` is not ``KEY=VALUE``; ``line`` is its 1-based number."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Ref:
    """``${name}`` or ``${name:-default}``, the default itself made of text and references."""

    __slots__ = ("name", "default")

    def __init__(self, name: str, default: "_Parts | None") -> None:
        self.name, self.default = name, default


def _malformed(text: str, start: int) -> VariableError:
    end = text.find("}", start)
    shown = text[start:] if end == -1 else text[start:end + 1]
    return VariableError(f"malformed variable reference {shown!r}: expected ${{NAME}} or ${{NAME:-default}}")


def _parse(text: str, pos: int, nested: bool) -> tuple[_Parts, int]:
    """Text and references from ``pos``; inside a default (``nested``) up to its closing ``}``."""
    parts: _Parts = []
    while True:
        m = _TOKEN.search(text, pos)
        if m is None or (m.group() == "}" and not nested):
            if nested:
                raise VariableError(f"unterminated default in {text!r}: a '${{NAME:-' needs its closing '}}'")
            parts.append(text[pos:])
            return parts, len(text)
        parts.append(text[pos:m.start()])
        token, pos = m.group(), m.end()
        if token == "}":
            return parts, m.start()
        if token == "$${":
            parts.append("${")
            continue
        name = _NAME.match(text, pos)
        if name is None:
            raise _malformed(text, m.start())
        pos = name.end()
        if text.startswith("}", pos):
            parts.append(_Ref(name.group(), None))
            pos += 1
        elif text.startswith(":-", pos):
            default, pos = _parse(text, pos + 2, nested=True)
            parts.append(_Ref(name.group(), default))
            pos += 1
        else:
            raise _malformed(text, m.start())


def _render(parts: _Parts, env: Mapping[str, str], missing: list[str]) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = env.get(part.name)
        if value is None or (value == "" and part.default is not None):
            if part.default is None:
                if part.name not in missing:
                    missing.append(part.name)
                continue
            value = _render(part.default, env, missing)
        out.append(value)
    return "".join(out)


def _substitute_text(text: str, env: Mapping[str, str]) -> str:
    """``text`` with every reference replaced; one :class:`VariableError` naming every unset variable."""
    parts, _end = _parse(text, 0, nested=False)
    missing: list[str] = []
    value = _render(parts, env, missing)
    if missing:
        names = ", ".join(missing)
        raise VariableError(f"variable{'s' if len(missing) > 1 else ''} {names} "
                            f"{'are' if len(missing) > 1 else 'is'} not set "
                            f"(use ${{{missing[0]}:-default}} for a fallback)")
    return value


def substitute(data: Any, env: Mapping[str, str],
               on_error: Callable[[tuple[Any, ...], VariableError], None]) -> Any:
    """A copy of ``data`` with every string value substituted; problems go to ``on_error(path, error)``
    (the offending value is kept as written) so that every problem of a file is reported at once."""

    def walk(value: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            try:
                return _substitute_text(value, env)
            except VariableError as exc:
                on_error(path, exc)
                return value
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        return value

    return walk(data, ())


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefix, quotes and ``#`` comments allowed); missing file -> {}."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise DotenvError(f"expected KEY=VALUE, got {raw.strip()!r}", number)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values
