"""Output helpers shared by CLI commands: the ``-o/--output human|json`` option, tables, and colour.

Colour is used only when standard output is a terminal, ``NO_COLOR`` is unset (or empty), ``TERM`` is not
``dumb`` and ``--no-color`` was not given. Tables are aligned on a terminal and tab-separated otherwise.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, Sequence, TypeVar

import click

__all__ = ["is_tty", "color_enabled", "disable_color", "style", "echo_json", "echo_table", "output_option",
           "OUTPUTS"]

F = TypeVar("F", bound=Callable[..., Any])
OUTPUTS = ("human", "json")
_NO_COLOR_KEY = "orgloop.no_color"


def is_tty() -> bool:
    return sys.stdout.isatty()


def disable_color() -> None:
    """No colour for the rest of this command (``--no-color``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().meta[_NO_COLOR_KEY] = True


def color_enabled() -> bool:
    """Whether to colour output: a terminal, no ``NO_COLOR``, ``TERM`` not ``dumb``, no ``--no-color``."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.find_root().meta.get(_NO_COLOR_KEY):
        return False
    return is_tty()


def style(text: str, **kwargs: Any) -> str:
    """``click.style`` when colour is enabled, the plain text otherwise."""
    return click.style(text, **kwargs) if color_enabled() else text


def echo_json(obj: Any) -> None:
    import json                      # here, not at the top: `orgloop --help` does not need it

    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """An aligned table with a (bold, when coloured) header on a TTY; tab-separated lines (header first)
    otherwise. A list value is shown comma-separated (JSON output keeps it a list)."""
    def cell(v: Any) -> str:
        return "" if v is None else ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    if not is_tty():
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(row))
        return
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo(style("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)), bold=True))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def output_option(*, json_alias: bool = True, format_alias: bool = False, default: str = "human") -> Callable[[F], F]:
    """``-o/--output human|json``, passed to the command as ``output``. ``--json`` (and ``--format``, where
    a command had it) stay as hidden aliases; giving two that disagree is a usage error."""
    def decorate(f: F) -> F:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: value for name, value in (("-o/--output", kwargs.pop("output")),
                                                      ("--json", "json" if kwargs.pop("legacy_json", False) else None),
                                                      ("--format", kwargs.pop("legacy_format", None))) if value}
            if len(set(given.values())) > 1:
                raise click.UsageError(f"{' and '.join(given)} disagree; give one of them")
            return f(*args, output=next(iter(given.values()), default), **kwargs)

        option = click.option("-o", "--output", type=click.Choice(OUTPUTS), default=None,
                              help=f"Output format: human or json (default: {default}).")
        decorated = option(wrapper)
        if json_alias:
            decorated = click.option("--json", "legacy_json", is_flag=True, hidden=True,
                                     help="Same as -o json.")(decorated)
        if format_alias:
            decorated = click.option("--format", "legacy_format", type=click.Choice(OUTPUTS), default=None,
                                     hidden=True, help="Same as -o.")(decorated)
        return decorated  # type: ignore[return-value]
    return decorate
