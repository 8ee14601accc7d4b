"""``${VAR}`` substitution in string values, and the ``.env`` file beside ``orgloop.yaml``.

``${VAR}`` takes the variable (an unset one is an error naming it); ``${VAR:-default}`` falls back
to the default when the variable is unset or empty; ``$${`` is a literal ``${``. Only string values
are substituted, after parsing, so a variable can never inject YAML structure.

Precedence: the shell environment, then the workspace's ``variables``, then ``.env``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

__all__ = ["substitute", "read_dotenv", "VariableError", "DotenvError"]

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


class VariableError(ValueError):
    """A ``${...}`` reference names an unset variable or is malformed."""


class DotenvError(VariableError):
    """A line of ``.env`` is not ``KEY=VALUE``; ``line`` is its 1-based number."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _substitute_text(text: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:
            raise VariableError(f"malformed variable reference {whole!r}: expected ${{NAME}} or ${{NAME:-default}}")
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise VariableError(f"variable {name} is not set (use ${{{name}:-default}} for a fallback)")
            return default
        return value

    return _REF.sub(repl, text)


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
