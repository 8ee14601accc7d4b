"""The ``--project/-p`` and ``--workspace/-w`` options and loading a checked project for a command.

(A stand-in for ``cli/_project.py`` of the ``validate`` branch, used until that branch is merged.)
"""
from __future__ import annotations

import contextlib
import gc
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from orgloop.config.loader import Project, ProjectNotFound, load_project

__all__ = ["project_options", "load_checked", "load_lenient", "gc_paused"]


def project_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-p/--project DIR`` and ``-w/--workspace NAME`` to a command."""
    fn = click.option("-w", "--workspace", default=None, envvar="ORGLOOP_WORKSPACE",
                      help="Workspace to use (default: the selected one, else 'default'). Env: ORGLOOP_WORKSPACE.")(fn)
    return click.option("-p", "--project", "project_dir", type=click.Path(path_type=Path), default=Path("."),
                        show_default=True, help="The project directory (or its orgloop.yaml).")(fn)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block. Loading a big project allocates hundreds of thousands
    of objects that all stay alive; every collection pass would walk all of them again, which made loading
    10,000 routes 8x slower than parsing them (bench/bench_plan.py). Nothing here forms garbage cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_checked(project_dir: Path, workspace: str | None) -> Project:
    """Load and check the project; on any error print the diagnostics to stderr and exit 1."""
    from orgloop.config.checks import check_project

    try:
        with gc_paused():
            project = check_project(load_project(project_dir, workspace=workspace))
    except ProjectNotFound as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    for d in project.sorted_diagnostics():
        click.echo(d.format(Path.cwd()), err=True)
    if project.errors:
        click.echo(f"Error: the project has {len(project.errors)} error(s); nothing was done.", err=True)
        sys.exit(1)
    return project


def load_lenient(project_dir: Path, workspace: str | None) -> Project:
    """Load the project for commands that only need its data directory and loggers (``stop``, ``status``,
    ``logs``): problems are ignored, only a missing project is fatal (exit 1)."""
    try:
        return load_project(project_dir, workspace=workspace)
    except ProjectNotFound as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
