"""``orgloop schema``: print the JSON Schema of project files (the loader validates with the same models)."""
from __future__ import annotations

import json
from pathlib import Path

import click

# the file kinds, listed here so that `orgloop schema --help` needs no pydantic (a test keeps them in step)
KINDS = ("Project", "ConnectorGroup", "RouteGroup", "TransformGroup", "LoggerGroup", "Workspace")

__all__ = ["schema"]


@click.command()
@click.option("--kind", type=click.Choice(KINDS), default=None,
              help="Only this file kind (default: every kind, discriminated by 'kind').")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the schema to this file instead of standard output.")
def schema(kind: str | None, out: Path | None) -> None:
    """Print the JSON Schema (draft 2020-12) of orgloop project files."""
    from orgloop.config.schema import json_schema

    text = json.dumps(json_schema(kind), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)
