"""``orgloop dlq``: list, show, replay and purge dead letters.

``list`` and ``show`` read without locking (safe while the runtime runs); ``replay`` and ``purge``
open the stores for writing, so the runtime of that data directory must be stopped.
Exit codes: 0 success, 1 entry not found, 2 usage error or store in use.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from orgloop.cli._output import echo_json, echo_table
from orgloop.errors import WalError

DEFAULT_DATA_DIR = Path(os.environ.get("ORGLOOP_DATA_DIR", "~/.orgloop/data")).expanduser()

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR, show_default=True,
    help="The runtime's data directory (dead letters live in its dlq/ folder). Env: ORGLOOP_DATA_DIR.")


@click.group()
def dlq() -> None:
    """Inspect and replay events that gave up on a route (dead letters)."""


@dlq.command("list")
@data_dir_option
@click.option("--route", help="Only entries of this route.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
def list_cmd(data_dir: Path, route: str | None, limit: int | None, as_json: bool) -> None:
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
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, default=str))
    elif rows:
        echo_table(rows, ["id", "time", "route", "actor", "reason", "attempts", "event_id", "error"])
    else:
        click.echo("no dead letters", err=True)


@dlq.command()
@data_dir_option
@click.argument("entry_id", type=int)
def show(data_dir: Path, entry_id: int) -> None:
    """Print one dead letter (event included) as JSON."""
    from orgloop.delivery.dlq import read_dead_letters

    for seq, entry in read_dead_letters(data_dir / "dlq"):
        if seq == entry_id:
            echo_json({"id": seq, **entry})
            return
    click.echo(f"Error: no dead letter with id {entry_id}", err=True)
    sys.exit(1)


def _open_for_writing(data_dir: Path):
    from orgloop.delivery.dlq import DeadLetterStore

    try:
        return DeadLetterStore(data_dir / "dlq")
    except WalError as exc:
        click.echo(f"Error: {exc}. Stop the runtime using {data_dir} first.", err=True)
        sys.exit(2)


@dlq.command()
@data_dir_option
@click.argument("entry_ids", type=int, nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter.")
def replay(data_dir: Path, entry_ids: tuple[int, ...], all_: bool) -> None:
    """Publish dead letters' events to the bus again (they then go through routing as new events)."""
    from orgloop.wal import Wal

    if not entry_ids and not all_:
        raise click.UsageError("name entry ids, or pass --all")
    store = _open_for_writing(data_dir)
    try:
        try:
            bus_wal = Wal(data_dir / "wal")
        except WalError as exc:
            click.echo(f"Error: {exc}. Stop the runtime using {data_dir} first.", err=True)
            sys.exit(2)
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
