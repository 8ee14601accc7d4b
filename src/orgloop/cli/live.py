"""``orgloop top`` and ``orgloop tap``: live views of a running runtime, read over its control socket.

``top`` samples ``/status`` twice, ``--interval`` apart, and shows rates per source and per route, queue
depths, WAL lag (unacked records), breaker states and dead-letter counts; on a terminal it refreshes in
place until Ctrl-C, otherwise (or with ``--once``) it prints samples as text or ``-o json``.
``tap`` prints the events the router hands to routes, as JSON lines, until ``--limit`` or Ctrl-C.

Exit codes: 0, 3 when the runtime is not running (or stops while watched), 64 for a bad flag or argument.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlencode

import click

from orgloop.cli._exit import EXIT_NOT_RUNNING, EXIT_OK
from orgloop.cli._output import echo_json, echo_table, is_tty, output_option, style
from orgloop.cli._project import project_options
from orgloop.cli._run_context import load_lenient
from orgloop.units import parse_duration

__all__ = ["top", "tap", "top_view"]


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if seconds <= 0:
        raise click.BadParameter("must be longer than zero")
    return seconds


def _instance(project_dir: Path | None, workspace: str | None) -> Any:
    """The running instance of the workspace, or exit 3 with a message."""
    from orgloop.instance import running_instance

    project = load_lenient(project_dir, workspace)
    inst = running_instance(project.data_dir)
    if inst is None:
        click.echo(f'orgloop is not running for workspace "{project.workspace}".', err=True)
        sys.exit(EXIT_NOT_RUNNING)
    return inst


def _gone(inst: Any) -> NoReturn:
    click.echo(f"orgloop (pid {inst.pid}) stopped answering; it is not running any more.", err=True)
    sys.exit(EXIT_NOT_RUNNING)


# --------------------------------------------------------------------------- top
def top_view(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """What ``top`` shows, from two ``/status`` samples taken ``seconds`` apart."""
    def rate(now: Any, then: Any) -> float:
        return round(max(0, (now or 0) - (then or 0)) / seconds, 2) if seconds > 0 else 0.0

    old_sources = {s["id"]: s for s in before.get("sources") or []}
    old_routes = {r["name"]: r for r in before.get("routes") or []}
    wal = after.get("wal") or {}
    return {
        "name": after.get("name"), "workspace": after.get("workspace"), "pid": after.get("pid"),
        "healthy": after.get("healthy"), "problems": after.get("problems") or [], "interval": round(seconds, 3),
        "events_per_second": rate(after.get("events_published"), before.get("events_published")),
        "wal": {"lag": wal.get("unacked"), "bytes_used": wal.get("data_bytes", wal.get("bytes")),
                "segments": wal.get("segments")} if wal else None,
        "dead_letters": after.get("dead_letters"),
        "sources": [{"id": s["id"], "rate": rate(s.get("events"), old_sources.get(s["id"], {}).get("events")),
                     "events": s.get("events", 0)} for s in after.get("sources") or []],
        "routes": [{"name": r["name"], "actor": r.get("actor"),
                    "rate": rate(r.get("delivered"), old_routes.get(r["name"], {}).get("delivered")),
                    "failed_rate": rate(r.get("failed"), old_routes.get(r["name"], {}).get("failed")),
                    "queue_depth": r.get("queue_depth", 0), "breaker": r.get("breaker", "closed"),
                    "delivered": r.get("delivered", 0), "failed": r.get("failed", 0),
                    "dead_lettered": r.get("dead_lettered", 0)} for r in after.get("routes") or []],
    }


def _render_top(view: dict[str, Any]) -> None:
    from orgloop.cli.run import _human_bytes

    health = style("healthy", fg="green") if view["healthy"] else style("UNHEALTHY", fg="red", bold=True)
    wal = view["wal"]
    wal_text = f"WAL lag {wal['lag']} unacked, {_human_bytes(wal['bytes_used'] or 0)} used" if wal else "no WAL"
    click.echo(f'orgloop "{view["name"]}" workspace "{view["workspace"]}" pid {view["pid"]}: {health}; '
               f"{view['events_per_second']:g} events/s in; {wal_text}; dead letters {view['dead_letters']} "
               f"(rates over {view['interval']:g}s)")
    for problem in view["problems"]:
        click.echo(f"  problem: {problem}")
    click.echo()
    echo_table([{"source": s["id"], "events/s": f"{s['rate']:g}", "events": s["events"]} for s in view["sources"]],
               ["source", "events/s", "events"])
    click.echo()
    rows = [{"route": r["name"], "actor": r["actor"], "delivered/s": f"{r['rate']:g}",
             "failed/s": f"{r['failed_rate']:g}", "queue": r["queue_depth"],
             "breaker": r["breaker"] if r["breaker"] == "closed" else style(r["breaker"], fg="red"),
             "dead letters": r["dead_lettered"], "delivered": r["delivered"]} for r in view["routes"]]
    echo_table(rows, ["route", "actor", "delivered/s", "failed/s", "queue", "breaker", "dead letters", "delivered"])


@click.command()
@project_options
@click.option("--once", is_flag=True, help="Print one sample (rates over --interval) and exit.")
@click.option("--interval", metavar="DURATION", callback=_duration, default="1s", show_default=True,
              help="Time between samples; rates are averaged over it.")
@output_option()
def top(project_dir: Path | None, workspace: str | None, once: bool, interval: float, output: str) -> None:
    """A live table of per-source and per-route rates, queue depths, WAL lag, breakers and dead letters.

    On a terminal it refreshes in place until Ctrl-C; elsewhere, or with --once, it prints samples
    (-o json: one JSON object per sample). Exit 3 when the runtime is not running."""
    from orgloop.instance import ControlError

    inst = _instance(project_dir, workspace)
    in_place = is_tty() and not once and output == "human"
    try:
        before, t0 = inst.request("GET", "/status"), time.monotonic()
        while True:
            time.sleep(interval)
            after, t1 = inst.request("GET", "/status"), time.monotonic()
            view = top_view(before, after, t1 - t0)
            if output == "json":
                if once:
                    echo_json(view)
                else:
                    click.echo(json.dumps(view, sort_keys=True))
            else:
                if in_place:
                    click.echo("\x1b[H\x1b[2J", nl=False)       # home, clear: redraw in place
                _render_top(view)
                if not in_place and not once:
                    click.echo()
            if once:
                return
            before, t0 = after, t1
    except ControlError:
        _gone(inst)
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)


# --------------------------------------------------------------------------- tap
@click.command()
@project_options
@click.option("--route", help="Only events handed to this route.")
@click.option("--source", help="Only events of this source.")
@click.option("--type", "event_type", help="Only events of this type.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N events.")
def tap(project_dir: Path | None, workspace: str | None, route: str | None, source: str | None,
        event_type: str | None, limit: int | None) -> None:
    """Print the events the router hands to routes, live, as JSON lines ({route, actor, seq, event}).

    Values under secret-looking keys are masked. A reader too slow for the pipeline misses events (the
    runtime never waits for a tap); how many is said on stderr. Exit 3 when the runtime is not running."""
    from orgloop.control.client import stream
    from orgloop.instance import ControlError

    inst = _instance(project_dir, workspace)
    try:
        st = inst.request("GET", "/status")
    except ControlError:
        _gone(inst)
    for given, kind, known in ((route, "route", [r["name"] for r in st.get("routes") or []]),
                               (source, "source", [s["id"] for s in st.get("sources") or []])):
        if given is not None and given not in known:
            raise click.BadParameter(f"the running runtime has no {kind} {given!r} (it has: "
                                     f"{', '.join(known) or 'none'})", param_hint=f"--{kind}")
    query = urlencode({k: v for k, v in (("route", route), ("source", source), ("type", event_type)) if v})
    seen = 0
    out = sys.stdout
    try:
        for item in stream(Path(inst.control_socket), "/tap" + (f"?{query}" if query else "")):
            if "tap" in item:
                if item["tap"] == "dropped":
                    click.echo(f"tap: {item['count']} events missed (this reader is slower than the pipeline)",
                               err=True)
                continue
            out.write(json.dumps(item, sort_keys=True, default=str) + "\n")
            out.flush()
            seen += 1
            if limit is not None and seen >= limit:
                return
    except ControlError:
        _gone(inst)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:            # `orgloop tap | head`: the reader left; no complaint at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    _gone(inst)                        # the stream ended: the runtime stopped
