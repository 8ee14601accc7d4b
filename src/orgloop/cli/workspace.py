"""``orgloop workspace``: list, select, create, show and delete the workspaces of a project.

Exit codes: 0 success; 1 the project cannot be read, or the workspace is unknown, exists already or
may not be deleted (it is running, or has state and ``--force`` was not given); 64 usage errors (an
invalid name among them).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from orgloop.cli._output import echo_json, output_option, style
from orgloop.cli._run_context import load_lenient
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
@output_option()
def list_cmd(project_dir: Path | None, workspace: str | None, output: str) -> None:
    """List the workspaces; the selected one is marked with '*'."""
    root = project_root(project_dir)
    selected = resolve_workspace(root, workspace)
    names = ws.list_workspaces(root)
    if output == "json":
        echo_json({"workspaces": names, "selected": selected, "selected_exists": selected in names})
        return
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
@output_option()
def show_cmd(project_dir: Path | None, workspace: str | None, output: str) -> None:
    """Show the selected workspace: what selected it, its file, data directory and variables."""
    root = project_root(project_dir)
    name, why = _selection(root, workspace)
    path = ws.workspace_file(root, name)
    if name != ws.DEFAULT and not path.is_file():
        raise click.ClickException(f"workspace {name!r} does not exist (no {path.relative_to(root)})")
    project = load_for_command(root, name, check=False)
    if output == "json":
        broken = path.is_file() and project.overlay is None
        variables = project.overlay.model.variables if project.overlay else {}
        echo_json({"workspace": name, "selected_by": why, "file": str(path.relative_to(root)) if path.is_file()
                   else None, "data_dir": str(project.data_dir), "valid": not broken,
                   "variables": None if broken else {k: mask(k, str(v).lower() if isinstance(v, bool) else str(v))
                                                     for k, v in sorted(variables.items())}})
        return
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
@click.option("--force", is_flag=True, help="Delete even when the workspace is running (it is stopped first), "
                                            "or has state and --purge-data is not given (the data is kept).")
def delete_cmd(project_dir: Path | None, workspace: str | None, name: str, purge_data: bool, yes: bool,
               force: bool) -> None:
    """Delete workspaces/NAME.yaml (never 'default' nor the selected workspace). A running workspace is
    refused without --force; so is one with state in its data directory, unless --purge-data or --force."""
    from orgloop.instance import running_instance

    root = project_root(project_dir)
    try:
        path = ws.check_removable(root, name, resolve_workspace(root, workspace))
    except WorkspaceError as exc:
        raise _fail(exc) from None
    own_dir = load_lenient(root, name).data_dir
    inst = running_instance(own_dir)
    has_state = own_dir.is_dir() and any(own_dir.iterdir())
    if inst is not None and not force:
        raise click.ClickException(f"workspace {name!r} was not deleted: it is running (pid {inst.pid}); stop it "
                                   f"first (`orgloop stop -w {name}`), or pass --force to stop and delete it")
    if has_state and not (force or purge_data):
        raise click.ClickException(f"workspace {name!r} was not deleted: it has state in {own_dir} (WAL, "
                                   "checkpoints, dead letters); pass --purge-data to delete that too, or --force "
                                   "to delete the workspace and keep its data directory")
    if inst is not None:
        _stop(inst.pid)
    data_dir = own_dir if purge_data else None
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
    elif has_state:
        click.echo(f"Its data directory {own_dir} was kept (delete it by hand, or next time use --purge-data)")


def _stop(pid: int, timeout: float = 30.0) -> None:
    """SIGTERM the workspace's runtime and wait for it to exit (``--force`` on a running workspace)."""
    import os
    import signal

    from orgloop.instance import wait_for_exit

    os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, timeout):
        raise click.ClickException(f"the runtime (pid {pid}) is still running after {timeout:g}s; nothing deleted")
    click.echo(f"Stopped its runtime (pid {pid})")
