"""``orgloop validate``: check every project file and report every problem at once.

Each problem is one line ``file:line:col: error|warning: message`` (file relative to the project root),
sorted by file, line and column, followed by a summary. Exit codes: 0 valid (warnings allowed),
1 errors found or the project cannot be read (no ``orgloop.yaml``, or it is unreadable), 64 usage.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orgloop.cli._exit import EXIT_ERROR, EXIT_OK
from orgloop.cli._output import echo_json, output_option, style
from orgloop.cli._project import format_diagnostic, load_for_command, project_options
from orgloop.config.workspaces import DEFAULT

if TYPE_CHECKING:
    from orgloop.config.loader import Project

__all__ = ["validate"]

def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(project: Project) -> dict[str, Any]:
    """The counts ``validate`` reports, as a JSON-ready mapping."""
    return {"project": project.name, "workspace": project.workspace, "valid": not project.errors,
            "errors": len(project.errors), "warnings": len(project.warnings), "files": len(project.files),
            **{kind: len(items) for kind, items in project.definitions.items()}}


def _summary_line(project: Project) -> str:
    s = summary(project)
    files = _plural(s["files"], "file")
    if not s["valid"]:
        counts = _plural(s["errors"], "error") + (f", {_plural(s['warnings'], 'warning')}" if s["warnings"] else "")
        return style(f"{counts} in {files}", fg="red", bold=True)
    where = f' in workspace "{project.workspace}"' if project.workspace != DEFAULT else ""
    warned = f" with {_plural(s['warnings'], 'warning')}" if s["warnings"] else ""
    return style(f'Project "{project.name}" is valid{where}{warned} ({files}, {_plural(s["routes"], "route")}).',
                 fg="green", bold=True)


@click.command()
@project_options
@output_option(json_alias=True, format_alias=True)
def validate(project_dir: Path | None, workspace: str | None, output: str) -> None:
    """Check every project file: syntax, schema, references, prompt files, plugins and loops, in the
    selected workspace; the other workspace files are checked on their own.

    -o human: one line per problem and a summary; -o json: an object with 'diagnostics' (a list) and
    'summary'. Exit codes: 0 valid (warnings allowed), 1 errors found or the project cannot be read."""
    from orgloop.config.loader import check_every_file

    try:
        project = check_every_file(load_for_command(project_dir, workspace))
    except click.ClickException as exc:
        if output == "json":
            echo_json({"error": exc.message})
        raise
    diagnostics = project.sorted_diagnostics()
    if output == "json":
        echo_json({"diagnostics": [d.to_json(project.root) for d in diagnostics], "summary": summary(project)})
    else:
        for d in diagnostics:
            click.echo(format_diagnostic(d, project.root))
        click.echo(_summary_line(project))
    sys.exit(EXIT_ERROR if project.errors else EXIT_OK)
