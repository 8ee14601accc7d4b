"""``orgloop schema``: print the JSON Schema of project files (the loader validates with the same models)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from orgloop.config.schema import KINDS, json_schema

__all__ = ["schema"]


@click.command()
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Only this file kind (default: every kind, discriminated by 'kind').")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schema to this file instead of standard output.")
def schema(kind: str | None, output: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of orgloop project files."""
    text = json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
