"""What every command that works on a project shares: the ``--project/-p`` and ``--workspace/-w``
options and loading the project.

Usage::

    @click.command()
    @project_options
    def plan(project_dir: Path | None, workspace: str | None) -> None:
        project = load_for_command(project_dir, workspace)

Failures to find or read the project, or an invalid workspace name from the environment or the stored
selection, raise :class:`click.ClickException` (``Error: ...`` on stderr, exit code 1); an invalid
``--workspace`` value is a usage error (exit code 64). :func:`orgloop.cli._run_context.load_checked` adds
the "problems on stderr, exit 1 when invalid" step that most commands want.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import click

from orgloop.cli._output import style
from orgloop.config.workspaces import WorkspaceError, check_name, selected_workspace

if TYPE_CHECKING:   # the loader, models and checks are imported when a command runs, not for --help
    from orgloop.config.diagnostics import Diagnostic
    from orgloop.config.loader import Project

__all__ = ["project_option", "workspace_option", "project_options", "check_workspace_name", "project_root",
           "resolve_workspace", "load_for_command", "format_diagnostic"]

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
    from orgloop.config.loader import ProjectNotFound, find_project

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
    from orgloop.config._gc import cyclic_gc_paused
    from orgloop.config.checks import check_project
    from orgloop.config.loader import ProjectNotFound, load_project

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
