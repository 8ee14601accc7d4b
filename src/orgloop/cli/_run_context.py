"""What ``plan``, ``start``/``stop``/``status``/``logs`` and ``test``/``routes``/``inspect`` share on top of
:mod:`orgloop.cli._project`: loading the project with its problems reported on stderr.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from orgloop.cli._project import load_for_command
from orgloop.config.loader import Project

__all__ = ["load_checked", "load_lenient"]


def load_checked(project_dir: Path | None, workspace: str | None) -> Project:
    """Load and check the project; with any error print the diagnostics to stderr and exit 1 (a project
    that cannot be read at all exits 1 too, through :func:`load_for_command`)."""
    project = load_for_command(project_dir, workspace)
    for d in project.sorted_diagnostics():
        click.echo(d.format(project.root), err=True)
    if project.errors:
        click.echo(f"Error: the project has {len(project.errors)} error(s) (see `orgloop validate`); "
                   "nothing was done.", err=True)
        sys.exit(1)
    return project


def load_lenient(project_dir: Path | None, workspace: str | None) -> Project:
    """Load the project for commands that only need its data directory and loggers (``stop``, ``status``,
    ``logs``): schema problems are ignored, only a project that cannot be read is fatal (exit 1)."""
    return load_for_command(project_dir, workspace, check=False)
