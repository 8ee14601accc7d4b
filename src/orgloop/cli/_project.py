"""What every command that works on a project shares: the ``--project/-p`` and ``--workspace/-w``
options and loading the project.

Usage::

    @click.command()
    @project_options
    def plan(project_dir: Path | None, workspace: str | None) -> None:
        project = load_for_command(project_dir, workspace)
        exit_if_invalid(project)        # prints the problems like `orgloop validate`, exits 2

Failures to find or read the project, or an invalid workspace name from the environment or the stored
selection, raise :class:`click.ClickException` (``Error: ...`` on stderr, exit code 1); an invalid
``--workspace`` value is a usage error (exit code 2).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from orgloop.cli._output import style
from orgloop.config._gc import cyclic_gc_paused
from orgloop.config.checks import check_project
from orgloop.config.diagnostics import Diagnostic
from orgloop.config.loader import Project, ProjectNotFound, find_project, load_project
from orgloop.config.workspaces import WorkspaceError, check_name, selected_workspace

__all__ = ["project_option", "workspace_option", "project_options", "check_workspace_name", "project_root",
           "resolve_workspace", "load_for_command", "format_diagnostic", "exit_if_invalid"]

F = TypeVar("F", bound=Callable[..., Any])


def check_workspace_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A click callback: ``value`` if it is a valid workspace name (or None), else a usage error."""
    if value is None:
        return None
    try:
        return check_name(value)
    except WorkspaceError as exc:
        raise click.BadParameter(str(exc)) from None


project_option = click.option(
    "--project", "-p", "project_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
    help="The project directory (or its orgloop.yaml). Default: the nearest orgloop.yaml from the current "
         "directory upwards.")
workspace_option = click.option(
    "--workspace", "-w", default=None, metavar="NAME", callback=check_workspace_name,
    help="The workspace to use. Default: $ORGLOOP_WORKSPACE, else the one chosen with "
         "`orgloop workspace select`, else 'default'.")


def project_options(f: F) -> F:
    """Both ``--project/-p`` (parameter ``project_dir``) and ``--workspace/-w`` (parameter ``workspace``)."""
    return project_option(workspace_option(f))


def _project_file(project_dir: Path | None) -> Path:
    try:
        if project_dir is None:
            return find_project(Path.cwd())
        return find_project(project_dir, search_parents=False)
    except ProjectNotFound as exc:
        raise click.ClickException(str(exc)) from None


def project_root(project_dir: Path | None) -> Path:
    """The directory of the project a command works on: ``project_dir`` itself (a directory holding
    ``orgloop.yaml``, or that file), else the nearest ``orgloop.yaml`` from the current directory up."""
    return _project_file(project_dir).parent


def resolve_workspace(root: Path, workspace: str | None) -> str:
    """The workspace a command uses (see :func:`orgloop.config.workspaces.selected_workspace`)."""
    try:
        return selected_workspace(root, workspace)
    except WorkspaceError as exc:
        raise click.ClickException(str(exc)) from None


def load_for_command(project_dir: Path | None, workspace: str | None, *, check: bool = True) -> Project:
    """Load the project in its workspace, with the cross-file checks unless ``check=False``. The caller
    decides what to do with ``project.errors``; a project that cannot be read at all exits 1. What was
    loaded is frozen for the garbage collector (see :func:`orgloop.config._gc.cyclic_gc_paused`)."""
    file = _project_file(project_dir)
    ws = resolve_workspace(file.parent, workspace)
    with cyclic_gc_paused(freeze=True):      # the project lives as long as the command
        try:
            project = load_project(file, workspace=ws)
        except ProjectNotFound as exc:
            raise click.ClickException(str(exc)) from None
        return check_project(project) if check else project


_SEVERITY_COLOUR = {"error": "red", "warning": "yellow"}


def format_diagnostic(d: Diagnostic, root: Path) -> str:
    """``file:line:col: severity: message``, file relative to ``root``, coloured on a TTY."""
    where = style(f"{d.display_file(root)}:{d.line}:{d.column}:", bold=True)
    severity = style(f"{d.severity}:", fg=_SEVERITY_COLOUR[d.severity], bold=True)
    return f"{where} {severity} {d.message}"


def exit_if_invalid(project: Project) -> None:
    """When ``project`` has errors: print every problem to stderr as ``orgloop validate`` does, and exit 2."""
    if not project.errors:
        return
    for d in project.sorted_diagnostics():
        click.echo(format_diagnostic(d, project.root), err=True)
    n = len(project.errors)
    click.echo(f"Error: the project has {n} error{'' if n == 1 else 's'}; fix {'it' if n == 1 else 'them'} "
               "first (`orgloop validate` lists them too)", err=True)
    raise SystemExit(2)
