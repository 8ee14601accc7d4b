"""The ``orgloop`` command line: one module per command group, registered here."""
from __future__ import annotations

import click

from orgloop import __version__


def _backends() -> str:
    """Which implementation of each twin pair is live, e.g. ``wal=compiled``."""
    from importlib import import_module

    parts = []
    for room in _TWIN_ROOMS:
        try:
            parts.append(f"{room}={import_module('orgloop.' + room).implementation()}")
        except ImportError:
            parts.append(f"{room}=missing")
    return " ".join(parts)


_TWIN_ROOMS: list[str] = ["wal", "queues"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", message=f"orgloop %(version)s", prog_name="orgloop")
def main() -> None:
    """orgloop: route events from sources to AI agents and commands, durably."""


@main.command("version")
def version_cmd() -> None:
    """Print the version and which implementations (compiled or pure) are live."""
    click.echo(f"orgloop {__version__} ({_backends()})")


def _register() -> None:
    """Attach every command group (one module each)."""
    from orgloop.cli import demo, dlq, hook, init, inspect, plan, run, schema, validate, wal, workspace

    main.add_command(wal.wal)
    main.add_command(demo.demo)
    main.add_command(dlq.dlq)
    main.add_command(validate.validate)
    main.add_command(workspace.workspace)
    main.add_command(schema.schema)
    main.add_command(init.init)
    main.add_command(plan.plan)
    main.add_command(hook.hook)
    for command in (run.start, run.stop, run.status, run.logs, inspect.test_cmd, inspect.routes, inspect.inspect):
        main.add_command(command)


_register()
