"""``orgloop init [DIR]``: scaffold the runnable starter project (synthetic events, a filter and a dedup
transform, one route with a prompt, a file actor, a file logger; no server needed).

Exit codes: 0 created, 1 the directory is not empty (use ``--force``) or cannot be written.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import click

__all__ = ["init", "TEMPLATE_DIR"]

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "starter"
_NAME_PLACEHOLDER = "${PROJECT_NAME:-starter}"


def project_name_for(directory: Path) -> str:
    """A valid ``metadata.name`` from a directory name (its data directory is keyed by it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._")
    return name[:128] or "starter"


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option("--force", is_flag=True, help="Write into a non-empty directory (existing files are overwritten).")
def init(directory: Path, force: bool) -> None:
    """Create a runnable example project in DIRECTORY (default: the current directory)."""
    if directory.exists() and any(directory.iterdir()) and not force:
        click.echo(f"Error: {directory} is not empty; pass --force to write into it anyway.", err=True)
        sys.exit(1)
    try:
        shutil.copytree(TEMPLATE_DIR, directory, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        project_file = directory / "orgloop.yaml"
        project_file.write_text(project_file.read_text(encoding="utf-8").replace(
            _NAME_PLACEHOLDER, project_name_for(directory)), encoding="utf-8")
    except OSError as exc:
        click.echo(f"Error: cannot write the project: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Created an orgloop project in {directory}. Next:")
    for step in ("validate", "plan", "start --for 10s"):
        click.echo(f"  orgloop {step} -p {directory}")
