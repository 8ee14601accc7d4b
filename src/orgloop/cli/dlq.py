"""``orgloop dlq``: list, show, replay and purge dead letters.

Which dead letters: those of the project's workspace (``-p``/``-w`` as for every command, and
``ORGLOOP_HOME``), or of the data directory given with ``--data-dir``.
``list`` and ``show`` read without locking (safe while the runtime runs). ``replay`` asks the running
runtime over its control socket, or, when none runs, writes to the stores itself. ``purge`` opens the store
for writing, so the runtime of that data directory must be stopped.
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
    return _where(f, with_bus=False)


def data_dir_and_bus_option(f: F) -> F:
    """As :func:`data_dir_option`, and the command also receives ``bus``: the project's ``(runtime.bus,
    runtime.bus_options)``, or None with ``--data-dir`` (a filewal bus at ``<data dir>/wal`` is assumed)."""
    return _where(f, with_bus=True)


def _where(f: F, *, with_bus: bool) -> F:
    @functools.wraps(f)
    def wrapper(*args: Any, project_dir: Path | None, workspace: str | None, data_dir: Path | None,
                **kwargs: Any) -> Any:
        bus: tuple[str, dict[str, Any]] | None = None
        if data_dir is None:
            from orgloop.cli._run_context import load_lenient

            project = load_lenient(project_dir, workspace)
            data_dir = project.data_dir
            if project.settings is not None:
                bus = project.settings.runtime.bus, dict(project.settings.runtime.bus_options)
        if with_bus:
            kwargs["bus"] = bus
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
@data_dir_and_bus_option
@click.argument("entry_ids", type=click.IntRange(min=1), nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Replay every dead letter.")
@output_option()
def replay(data_dir: Path, bus: tuple[str, dict[str, Any]] | None, entry_ids: tuple[int, ...], all_: bool,
           output: str) -> None:
    """Deliver dead letters again, each to its own route only, as recorded (no transforms run again).

    With the runtime running, it replays them itself (over its control socket). Otherwise redelivery
    records are written to the log of the project's filewal bus, and the runtime delivers them when it
    starts (another bus needs the runtime running). An entry leaves the store only once its redelivery is
    durable. Exit 1 when a named entry does not exist.
    """
    from orgloop.instance import ControlError, running_instance

    if bool(entry_ids) == all_:
        raise click.UsageError("name entry ids, or pass --all (not both)")
    ids = None if all_ else list(dict.fromkeys(entry_ids))
    inst = running_instance(data_dir)
    if inst is not None:
        try:
            reply = inst.request("POST", "/dead-letters/replay", {"ids": ids}, timeout=600.0)
        except ControlError as exc:
            click.echo(f"Error: the running runtime (pid {inst.pid}) did not replay: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        replayed, via = list(reply["replayed"]), "runtime"
    else:
        replayed, via = _replay_into_bus_log(data_dir, bus, ids), "store"
    found = set(replayed)
    not_found = [] if ids is None else [i for i in ids if i not in found]
    if output == "json":
        echo_json({"replayed": replayed, "not_found": not_found, "via": via})
    else:
        where = f"handed to the running runtime (pid {inst.pid})" if inst is not None else \
            "written to the bus log; the runtime delivers them when it starts"
        click.echo(f"replayed {len(replayed)} dead letters ({where})")
        for i in not_found:
            click.echo(f"Error: no dead letter with id {i}", err=True)
    if not_found:
        sys.exit(EXIT_ERROR)


def _replay_into_bus_log(data_dir: Path, bus: tuple[str, dict[str, Any]] | None, ids: list[int] | None) -> list[int]:
    """Replay with the runtime stopped: redelivery records go to the log of the filewal bus of ``data_dir``,
    opened with the project's bus options (so its encoding and segment settings are the runtime's)."""
    from orgloop.bus import open_bus
    from orgloop.plugins import PluginConfigError

    kind, options = bus if bus is not None else ("filewal", {})
    if kind != "filewal":
        click.echo(f"Error: the project's bus is {kind}: only its running runtime can replay onto it; start the "
                   "runtime, then replay while it runs.", err=True)
        sys.exit(EXIT_ERROR)
    options = {**options, "path": Path(options.get("path") or data_dir / "wal")}
    if not options["path"].is_dir():
        click.echo(f"Error: no bus log at {options['path']} (the runtime of {data_dir} never ran, or does not use "
                   "the filewal bus); start the runtime, then replay while it runs.", err=True)
        sys.exit(EXIT_ERROR)
    store = _open_for_writing(data_dir)
    try:
        try:
            log_bus = open_bus("filewal", **options)
        except WalError as exc:
            click.echo(f"Error: {exc}. Stop the runtime using {data_dir} first.", err=True)
            sys.exit(EXIT_ERROR)
        except PluginConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        try:
            # wait=False: nothing fetches here, so a max_inflight bound must not hold the publish
            return store.replay(lambda events: log_bus.publish_many(events, wait=False), ids)
        finally:
            log_bus.close()
    finally:
        store.close()


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
