"""``orgloop workspace``: list, select, create, show and delete the workspaces of a project.

Exit codes: 0 success; 1 the project cannot be read, or the workspace is unknown, exists already or
may not be deleted; 2 usage errors (an invalid name among them).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from orgloop.cli._output import style
from orgloop.cli._project import (check_workspace_name, load_for_command, project_option, project_root,
                                  resolve_workspace, workspace_option)
from orgloop.config import workspaces as ws
from orgloop.config.workspaces import WorkspaceError

__all__ = ["workspace"]

_SECRET = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
F = TypeVar("F", bound=Callable[..., Any])


def _name_argument(f: F) -> F:
    """The NAME argument, checked to be a valid workspace name (a usage error otherwise)."""
    return click.argument("name", callback=check_workspace_name)(f)


def _fail(exc: WorkspaceError) -> click.ClickException:
    return click.ClickException(str(exc))


def _selection(root: Path, workspace: str | None) -> tuple[str, str]:
    try:
        return ws.selection(root, workspace)
    except WorkspaceError as exc:
        raise _fail(exc) from None


def mask(key: str, value: str) -> str:
    """``value``, or asterisks when ``key`` looks like it names a secret (TOKEN, SECRET, PASSWORD, KEY)."""
    return "********" if _SECRET.search(key) else value


@click.group()
def workspace() -> None:
    """Environments of one project, each with its own variables, overrides and data directory."""


@workspace.command("list")
@project_option
@workspace_option
def list_cmd(project_dir: Path | None, workspace: str | None) -> None:
    """List the workspaces; the selected one is marked with '*'."""
    root = project_root(project_dir)
    selected = resolve_workspace(root, workspace)
    names = ws.list_workspaces(root)
    for name in names:
        click.echo(style(f"* {name}", fg="green", bold=True) if name == selected else f"  {name}")
    if selected not in names:
        click.echo(style(f"* {selected} (missing: no {ws.workspace_file(root, selected).relative_to(root)})",
                         fg="red", bold=True))


@workspace.command("select")
@project_option
@_name_argument
def select_cmd(project_dir: Path | None, name: str) -> None:
    """Make NAME the workspace of every later command (stored in .orgloop/workspace)."""
    root = project_root(project_dir)
    try:
        ws.select_workspace(root, name)
    except WorkspaceError as exc:
        raise _fail(exc) from None
    click.echo(f'Switched to workspace "{name}"')
    chosen, why = _selection(root, None)
    if chosen != name:
        click.echo(f"note: {why}={chosen} is set and takes precedence in this shell", err=True)


@workspace.command("new")
@project_option
@_name_argument
def new_cmd(project_dir: Path | None, name: str) -> None:
    """Create workspaces/NAME.yaml, a commented skeleton to fill in."""
    root = project_root(project_dir)
    try:
        path = ws.create_workspace(root, name)
    except WorkspaceError as exc:
        raise _fail(exc) from None
    click.echo(f'Created workspace "{name}" in {path.relative_to(root)}; '
               f"select it with `orgloop workspace select {name}`")


@workspace.command("show")
@project_option
@workspace_option
def show_cmd(project_dir: Path | None, workspace: str | None) -> None:
    """Show the selected workspace: what selected it, its file, data directory and variables."""
    root = project_root(project_dir)
    name, why = _selection(root, workspace)
    path = ws.workspace_file(root, name)
    if name != ws.DEFAULT and not path.is_file():
        raise click.ClickException(f"workspace {name!r} does not exist (no {path.relative_to(root)})")
    project = load_for_command(root, name, check=False)
    click.echo(f"workspace:   {style(name, bold=True)} (selected by {why})")
    click.echo(f"file:        {path.relative_to(root) if path.is_file() else '(none; the base project as is)'}")
    click.echo(f"data dir:    {project.data_dir}")
    if path.is_file() and project.overlay is None:
        click.echo(f"variables:   unavailable: {path.relative_to(root)} has errors "
                   f"(run `orgloop validate -w {name}`)")
        return
    variables = project.overlay.model.variables if project.overlay else {}
    click.echo("variables:" + ("" if variables else "   (none)"))
    for key in sorted(variables):
        value = variables[key]
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        click.echo(f"  {key} = {mask(key, shown)}")


@workspace.command("delete")
@project_option
@workspace_option
@_name_argument
@click.option("--purge-data", is_flag=True, help="Also delete the workspace's data directory (WAL, "
                                                 "checkpoints, dead letters, applied state).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before purging data.")
def delete_cmd(project_dir: Path | None, workspace: str | None, name: str, purge_data: bool, yes: bool) -> None:
    """Delete workspaces/NAME.yaml (never 'default' nor the selected workspace)."""
    root = project_root(project_dir)
    try:
        path = ws.check_removable(root, name, resolve_workspace(root, workspace))
    except WorkspaceError as exc:
        raise _fail(exc) from None
    data_dir = load_for_command(root, name, check=False).data_dir if purge_data else None
    if data_dir is not None:
        if root.resolve().is_relative_to(data_dir.resolve()):
            raise click.ClickException(f"refusing to purge {data_dir}: it contains the project itself")
        if data_dir.exists() and not yes:
            click.confirm(f"Delete the data directory {data_dir} of workspace {name!r}?", abort=True)
    path.unlink()
    click.echo(f'Deleted workspace "{name}" ({path.relative_to(root)})')
    if data_dir is not None:
        if data_dir.exists():
            shutil.rmtree(data_dir)
            click.echo(f"Deleted its data directory {data_dir}")
        else:
            click.echo(f"It had no data directory ({data_dir} does not exist)")
