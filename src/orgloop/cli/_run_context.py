"""What ``plan``, ``start``/``stop``/``status``/``logs`` and ``test``/``routes``/``inspect`` share on top of
:mod:`orgloop.cli._project`: loading the project with its problems reported on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orgloop.cli._exit import EXIT_ERROR
from orgloop.cli._project import format_diagnostic, load_for_command

if TYPE_CHECKING:
    from orgloop.config.loader import Project

__all__ = ["load_checked", "load_lenient", "own_data_dir"]


def own_data_dir(project: Project) -> None:
    """Make sure the project's data directory is its own: move its data from the 0.1 layout (keyed by name
    only) when that is where it still is, and exit 1 when the directory records another project."""
    from orgloop.config import workspaces as ws

    if project.data_dir == ws.workspace_data_dir(project.name or project.root.name, project.root, project.workspace):
        moved = ws.adopt_legacy_data_dir(project.name or project.root.name, project.root, project.workspace)
        if moved is not None:
            click.echo(f"note: moved this workspace's data from {moved} (the old layout, shared by every project "
                       f"named {project.name!r}) to {project.data_dir}", err=True)
    try:
        ws.check_owner(project.data_dir, project.name or project.root.name, project.root)
    except ws.DataDirError as exc:
        raise click.ClickException(str(exc)) from None


def load_checked(project_dir: Path | None, workspace: str | None) -> Project:
    """Load and check the project; with any error print the diagnostics to stderr and exit 1 (a project
    that cannot be read at all exits 1 too, through :func:`load_for_command`)."""
    project = load_for_command(project_dir, workspace)
    for d in project.sorted_diagnostics():
        click.echo(format_diagnostic(d, project.root), err=True)
    if project.errors:
        n = len(project.errors)
        click.echo(f"Error: the project has {n} error{'' if n == 1 else 's'}; fix {'it' if n == 1 else 'them'} "
                   "first (`orgloop validate` lists them too). Nothing was done.", err=True)
        sys.exit(EXIT_ERROR)
    own_data_dir(project)
    return project


def load_lenient(project_dir: Path | None, workspace: str | None) -> Project:
    """Load the project for commands that only need its data directory and loggers (``stop``, ``status``,
    ``logs``): schema problems are ignored, only a project that cannot be read is fatal (exit 1)."""
    project = load_for_command(project_dir, workspace, check=False)
    own_data_dir(project)
    return project
