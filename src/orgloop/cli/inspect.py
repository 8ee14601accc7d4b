"""``orgloop test | routes | inspect``: look at a project's routing without running it.

Exit codes: ``test`` 0 at least one route would deliver, 2 nothing would be delivered (no route matches,
or its transforms drop the event), 1 error. ``routes`` 0 (1 invalid project). ``inspect`` 0 found,
1 not found or invalid project. Every command: 64 for a bad flag or argument.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from orgloop.cli._exit import EXIT_ATTENTION, EXIT_ERROR, EXIT_OK
from orgloop.cli._output import echo_json, echo_table, output_option, style
from orgloop.cli._project import project_options
from orgloop.cli._run_context import load_checked
from orgloop.plan import KINDS, SINGULAR

__all__ = ["test_cmd", "routes", "inspect"]


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


@click.command("test")
@project_options
@click.argument("event_file", type=click.File("r", encoding="utf-8"))
@output_option()
def test_cmd(project_dir: Path | None, workspace: str | None, event_file: TextIO, output: str) -> None:
    """Route the event in EVENT_FILE (JSON, '-' for stdin) in dry-run and show what each actor would receive.

    Nothing is delivered and nothing is written to the WAL; script transforms really run.
    Exit 0: something would be delivered, 2: nothing would, 1: error."""
    from orgloop.config.resolve import to_runtime_spec
    from orgloop.dryrun import dry_run
    from orgloop.event import EventError, validate_event

    project = load_checked(project_dir, workspace)
    try:
        event = validate_event(json.load(event_file), fill=True)
    except (ValueError, EventError) as exc:
        click.echo(f"Error: {event_file.name} is not a valid event: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    try:
        outcomes = dry_run(to_runtime_spec(project), event)
    except Exception as exc:  # a transform plug-in that cannot be built is the user's error, not a crash
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    from orgloop.plan import Masker

    masker = Masker.for_variables(project.variables)

    def shown(value: Any) -> Any:
        return Masker.display(masker.hide(value))

    result: list[dict[str, Any]] = [{"route": o.route, "actor": o.actor, "delivered": not o.dropped,
               "transforms": [{"transform": s.get("transform"), "phase": s.get("phase"), "error": s.get("error")}
                              for s in o.steps],
               "deliveries": [{"event": d.event, "prompt": d.prompt, "config": shown(d.config)}
                              for d in o.deliveries]} for o in outcomes]
    delivering = sum(1 for o in outcomes if not o.dropped)
    if output == "json":
        echo_json({"event": event, "routes": result})
    else:
        click.echo(f"Event {event['id']} ({event['type']} from {event['source']})")
        for r in result:
            click.echo()
            click.echo(style(f"route {r['route']} -> actor {r['actor']}", bold=True))
            for step in r["transforms"]:
                click.echo(f"  transform {step['transform']}: {step['phase'].removeprefix('transform.')}"
                           + (f" ({step['error']})" if step["error"] else ""))
            if not r["deliveries"]:
                click.echo(style("  dropped: nothing would be delivered", fg="yellow"))
            for d in r["deliveries"]:
                click.echo("  would deliver:")
                click.echo("    event:\n" + _indent(_dump(d["event"])))
                click.echo("    prompt:\n" + (_indent(d["prompt"].rstrip("\n")) if d["prompt"] else "      (none)"))
                click.echo("    config:\n" + _indent(_dump(d["config"])))
        click.echo()
        click.echo(f"{len(outcomes)} route(s) matched, {delivering} would deliver." if outcomes
                   else "No route matches this event.")
    sys.exit(EXIT_OK if delivering else EXIT_ATTENTION)


@click.command()
@project_options
@output_option()
def routes(project_dir: Path | None, workspace: str | None, output: str) -> None:
    """List the project's routes: name, source, event types, actor, transforms."""
    project = load_checked(project_dir, workspace)
    rows = [{"name": d.name, "source": d.model.when.source, "events": list(d.model.when.events or ["*"]),
             "actor": d.model.then.actor, "transforms": [t.ref for t in d.model.transforms]}
            for d in project.routes.values()]
    if output == "json":
        echo_json(rows)
    elif rows:
        echo_table([{**r, "transforms": r["transforms"] or "-"} for r in rows],
                   ["name", "source", "events", "actor", "transforms"])
    else:
        click.echo("no routes (add RouteGroup files under routes/)", err=True)


@click.command()
@project_options
@click.argument("kind", type=click.Choice([SINGULAR[k] for k in KINDS]))
@click.argument("name")
@output_option()
def inspect(project_dir: Path | None, workspace: str | None, kind: str, name: str, output: str) -> None:
    """Show one resolved definition (workspace overrides and defaults applied, secrets masked)."""
    import yaml

    from orgloop.config.diagnostics import did_you_mean
    from orgloop.plan import Masker, desired_state

    project = load_checked(project_dir, workspace)
    plural = next(k for k in KINDS if SINGULAR[k] == kind)
    table = project.definitions[plural]
    if name not in table:
        click.echo(f"Error: no {kind} {name!r}{did_you_mean(name, table)}", err=True)
        sys.exit(1)
    d = table[name]
    line, column = d.position()
    item = {("id" if plural in ("sources", "actors") else "name"): name,
            **Masker.display(desired_state(project)[plural][name])}
    where = f"{os.path.relpath(d.file, project.root)}:{line}:{column}"
    if output == "json":
        echo_json({"kind": kind, "file": where, "definition": item})
    else:
        click.echo(f"# {kind} {name}, defined at {where} (workspace {project.workspace})")
        click.echo(yaml.safe_dump(item, sort_keys=False, allow_unicode=True).rstrip())
