"""``orgloop plan``: what ``orgloop start`` would change in the selected workspace.

Exit codes (like Terraform's ``-detailed-exitcode``): 0 no changes, 2 changes, 1 error (an invalid
project prints its diagnostics to stderr), 64 usage error.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orgloop.cli._exit import EXIT_ATTENTION, EXIT_ERROR, EXIT_OK
from orgloop.cli._output import echo_json, output_option, style
from orgloop.cli._project import project_options
from orgloop.cli._run_context import load_checked

if TYPE_CHECKING:   # imported when a command runs, not for --help
    from orgloop.config.loader import Project
    from orgloop.instance import Instance
    from orgloop.plan import Plan, State

__all__ = ["plan", "current_state", "render_plan"]

_MARK = {"added": ("+", "green"), "changed": ("~", "yellow"), "removed": ("-", "red"), "unchanged": ("=", None)}


def current_state(project: Project) -> tuple[State, str, Instance | None]:
    """What the workspace runs now: the running runtime's state, else the recorded applied state, else
    nothing. Returns the state, a description of where it came from, and the running instance (if any)."""
    from orgloop.instance import ControlError, running_instance
    from orgloop.plan import empty_state, read_applied

    inst = running_instance(project.data_dir)
    if inst is not None:
        try:
            state = inst.request("GET", "/state").get("state")
        except (ControlError, AttributeError):
            state = None
        if isinstance(state, dict):
            return state, f"the running runtime (pid {inst.pid})", inst
    try:
        record = read_applied(project.data_dir)
    except ValueError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    if record is not None:
        when = dt.datetime.fromtimestamp(record.get("applied_at", 0), dt.timezone.utc)
        return record["state"], f"the state applied at {when.isoformat(timespec='seconds')}", inst
    return empty_state(), "nothing (this workspace was never started)", inst


def _value(v: Any) -> str:
    from orgloop.plan import ABSENT, Masker

    return "(absent)" if v is ABSENT else json.dumps(Masker.display(v), sort_keys=True, ensure_ascii=False)


def render_plan(plan: Plan, base: str, project: Project, show_all: bool = False) -> None:
    """The human form: one ``+ ~ - =`` line per item, field changes under ``~`` lines, then the summary."""
    click.echo(f'Project "{project.name}", workspace "{project.workspace}", compared with {base}.')
    shown = [i for i in plan.items if show_all or i.action != "unchanged"]
    if shown:
        click.echo()
    for item in shown:
        mark, colour = _MARK[item.action]
        line = f"{mark} {item.label}"
        click.echo(style(line, fg=colour) if colour else style(line, dim=True))
        for f in item.fields:
            click.echo(f"    {f.dotted()}: {_value(f.old)} -> {_value(f.new)}")
    click.echo()
    click.echo(style(plan.summary(), bold=True))


@click.command("plan")
@project_options
@click.option("--all", "show_all", is_flag=True, help="Also list unchanged items (marked '=').")
@output_option()
def plan(project_dir: Path | None, workspace: str | None, show_all: bool, output: str) -> None:
    """Show what `orgloop start` would add (+), change (~) or remove (-). Exit 0: no changes, 2: changes, 1: error."""
    from orgloop.config._gc import cyclic_gc_paused
    from orgloop.plan import compute_plan, desired_state

    with cyclic_gc_paused():
        project = load_checked(project_dir, workspace)
        current, base, _inst = current_state(project)
        result = compute_plan(current, desired_state(project), project.workspace)
    if output == "json":
        echo_json({"project": project.name, "base": base, **result.to_json(include_unchanged=show_all)})
    else:
        render_plan(result, base, project, show_all)
    sys.exit(EXIT_ATTENTION if result.has_changes else EXIT_OK)
