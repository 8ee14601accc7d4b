"""``orgloop dlq``: list, show, replay and purge dead letters.

Which dead letters: those of the project's workspace (``-p``/``-w`` as for every command, and
``ORGLOOP_HOME``), or of the data directory given with ``--data-dir``.
``list`` and ``show`` read without locking (safe while the runtime runs); ``replay`` and ``purge``
open the stores for writing, so the runtime of that data directory must be stopped.
Exit codes: 0 success, 1 entry not found, store in use or no project, 64 usage error.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from orgloop.cli._exit import EXIT_ERROR
from orgloop.cli._output import echo_json, echo_table, output_option
from orgloop.cli._project import project_options
from orgloop.errors import WalError

F = TypeVar("F", bound=Callable[..., Any])


def data_dir_option(f: F) -> F:
    """``-p``/``-w`` and ``--data-dir``; the command receives ``data_dir``: the ``--data-dir`` given, else
    the data directory of the project's workspace."""
    @functools.wraps(f)
    def wrapper(*args: Any, project_dir: Path | None, workspace: str | None, data_dir: Path | None,
                **kwargs: Any) -> Any:
        if data_dir is None:
            from orgloop.cli._run_context import load_lenient

            data_dir = load_lenient(project_dir, workspace).data_dir
        return f(*args, data_dir=data_dir, **kwargs)

    option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                          help="A runtime's data directory (dead letters live in its dlq/ folder). Default: "
                               "the data directory of the project's workspace.")
    return project_options(option(wrapper))  # type: ignore[return-value]


@click.group()
def dlq() -> None:
    """Inspect and replay events that gave up on a route (dead letters)."""


@dlq.command("list")
@data_dir_option
@click.option("--route", help="Only entries of this route.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many entries.")
@output_option()
def list_cmd(data_dir: Path, route: str | None, limit: int | None, output: str) -> None:
    """List dead letters, oldest first."""
    from orgloop.delivery.dlq import read_dead_letters

    rows = []
    for seq, entry in read_dead_letters(data_dir / "dlq"):
        if route and entry.get("route") != route:
            continue
        rows.append({"id": seq, "time": entry.get("time"), "route": entry.get("route"), "actor": entry.get("actor"),
                     "reason": entry.get("reason"), "attempts": entry.get("attempts"),
                     "event_id": entry.get("event", {}).get("id"), "error": (entry.get("error") or "")[:60]})
        if limit and len(rows) >= limit:
            break
    if output == "json":
        echo_json(rows)
    elif rows:
        echo_table(rows, ["id", "time", "route", "actor", "reason", "attempts", "event_id", "error"])
    else:
        click.echo("no dead letters", err=True)


@dlq.command()
@data_dir_option
@click.argument("entry_id", type=int)
@output_option()
def show(data_dir: Path, entry_id: int, output: str) -> None:
    """Print one dead letter, its event included."""
    import json

    from orgloop.delivery.dlq import read_dead_letters

    for seq, entry in read_dead_letters(data_dir / "dlq"):
        if seq == entry_id:
            if output == "json":
                echo_json({"id": seq, **entry})
                return
            for key in ("route", "actor", "reason", "attempts", "time", "error"):
                click.echo(f"{key + ':':10} {entry.get(key)}")
            click.echo("event:\n" + "\n".join("  " + line for line in
                                                 json.dumps(entry.get("event"), indent=2, sort_keys=True,
                                                            default=str).splitlines()))
            return
    click.echo(f"Error: no dead letter with id {entry_id}", err=True)
    sys.exit(EXIT_ERROR)


def _open_for_writing(data_dir: Path):
    from orgloop.delivery.dlq import DeadLetterStore

    try:
        return DeadLetterStore(data_dir / "dlq")
    except WalError as exc:
        click.echo(f"Error: {exc}. Stop the runtime using {data_dir} first.", err=True)
        sys.exit(EXIT_ERROR)


@dlq.command()
@data_dir_option
@click.argument("entry_ids", type=int, nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter.")
def replay(data_dir: Path, entry_ids: tuple[int, ...], all_: bool) -> None:
    """Deliver dead letters again, each to its own route only, as recorded (no transforms run again).

    Writes redelivery records to the bus's WAL; the runtime delivers them when it starts.
    """
    from orgloop.wal import Wal

    if not entry_ids and not all_:
        raise click.UsageError("name entry ids, or pass --all")
    store = _open_for_writing(data_dir)
    try:
        try:
            bus_wal = Wal(data_dir / "wal")
        except WalError as exc:
            click.echo(f"Error: {exc}. Stop the runtime using {data_dir} first.", err=True)
            sys.exit(EXIT_ERROR)
        with bus_wal:
            n = store.replay(bus_wal.append_events, None if all_ else entry_ids)
    finally:
        store.close()
    click.echo(f"replayed {n} dead letters")


@dlq.command()
@data_dir_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(data_dir: Path, yes: bool) -> None:
    """Delete every dead letter."""
    if not yes and not click.confirm(f"Delete all dead letters in {data_dir / 'dlq'}?", default=False):
        sys.exit(1)
    store = _open_for_writing(data_dir)
    with store:
        n = store.purge()
    click.echo(f"purged {n} dead letters")
