"""Output helpers shared by CLI commands: tables and colour on a TTY, plain lines or JSON otherwise."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

import click

__all__ = ["is_tty", "echo_json", "echo_table", "style"]


def is_tty() -> bool:
    return sys.stdout.isatty()


def style(text: str, **kwargs: Any) -> str:
    """``click.style`` on a TTY, the plain text elsewhere."""
    return click.style(text, **kwargs) if is_tty() else text


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def echo_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """An aligned table with a bold header on a TTY; tab-separated lines (header first) otherwise."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    if not is_tty():
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(row))
        return
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    click.echo(click.style("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)), bold=True))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))
