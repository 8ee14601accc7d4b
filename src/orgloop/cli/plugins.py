"""``orgloop plugins``: every installed plugin with its kind, Python distribution and version.

Built-ins and third-party packages are found the same way (``orgloop.*`` entry points); a plugin whose
module cannot be imported is listed with the reason instead of its config model. Exit 0.
"""
from __future__ import annotations

import click

from orgloop import plugins as registry
from orgloop.cli._output import echo_json, echo_table, output_option

__all__ = ["plugins"]

_KINDS = {"source": "sources", "actor": "actors", "transform": "transforms", "logger": "loggers", "bus": "buses"}


@click.command("plugins")
@click.option("--kind", type=click.Choice(list(_KINDS)), default=None, help="Only plugins of this kind.")
@output_option(json_alias=False)
def plugins(kind: str | None, output: str) -> None:
    """List installed plugins: kind, name, distribution, version and config model."""
    kinds = [_KINDS[kind]] if kind else list(_KINDS.values())
    rows = [info.to_json() for k in kinds for info in registry.describe(k)]
    if output == "json":
        echo_json({"plugins": rows})
    else:
        echo_table(rows, ["kind", "name", "distribution", "version", "config_model", "target"])
