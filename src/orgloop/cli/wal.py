"""``orgloop wal``: verify, inspect, stats, repair and export a WAL directory.

Exit codes (as everywhere): 0 success, 1 error (the message names the file and what to do), 4 damage
found (``verify``, and ``export`` when it had to skip damaged records), 64 usage error. No command
prints a traceback for a damaged, odd or unreadable directory.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import lmdb

from orgloop.cli._exit import EXIT_DAMAGE, EXIT_ERROR, EXIT_OK
from orgloop.cli._output import echo_json, echo_table, output_option, style
from orgloop.errors import WalError

if TYPE_CHECKING:
    from orgloop.wal.tools import VerifyReport


def _tools():
    """:mod:`orgloop.wal.tools`, imported when a command runs (``--help`` stays fast)."""
    from orgloop.wal import tools

    return tools

WAL_DIR = click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))


def _progress(view_segments: int, label: str):
    """A progress bar over segments on stderr (shown only on a terminal)."""
    return click.progressbar(length=view_segments, label=label, file=sys.stderr,
                             show_pos=True) if sys.stderr.isatty() else None


def _run_with_progress(fn, directory: Path, label: str, **kwargs):
    bar = _progress(len(_tools().open_view(directory).segments), label)
    if bar is None:
        return fn(directory, **kwargs)
    with bar:
        return fn(directory, progress=lambda seg: bar.update(1), **kwargs)


class _WalErrors(click.Group):
    """Turns every expected failure into one ``Error: …`` line and exit 1 (usage errors exit 64, as for
    every command: see :class:`orgloop.cli.LazyGroup`)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (WalError, OSError, lmdb.Error) as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)


@click.group(cls=_WalErrors)
def wal() -> None:
    """Inspect and maintain a write-ahead-log directory."""


def _echo_damage(report: VerifyReport) -> None:
    for d in report.damage:
        where = f" at offset {d['offset']}" if d.get("offset") is not None else ""
        why = f": {d['error']}" if d.get("error") else ""
        click.echo(f"{d['segment']}: {d['kind']}{where} (seqs {d['first_seq']}..{d['last_seq']}){why}", err=True)
    for u in report.unreadable:
        click.echo(f"{u['segment']}: unreadable: {u['error']}", err=True)


@wal.command()
@WAL_DIR
@output_option()
def verify(directory: Path, output: str) -> None:
    """Read and checksum every record; exit 4 if any damage is found. Changes nothing."""
    report = _run_with_progress(_tools().verify, directory, "verifying")
    if output == "json":
        echo_json(report.to_dict())
    else:
        _echo_damage(report)
        verdict = style("OK", fg="green") if report.ok else style("DAMAGED", fg="red", bold=True)
        click.echo(f"{verdict}: {report.segments} segments, {report.records} readable records, "
                   f"{len(report.damage) + len(report.unreadable)} problems")
    sys.exit(EXIT_OK if report.ok else EXIT_DAMAGE)


@wal.command()
@WAL_DIR
@output_option()
def inspect(directory: Path, output: str) -> None:
    """List segments with their state, sequence range and size."""
    rows = _tools().segment_summaries(_tools().open_view(directory))
    if output == "json":
        echo_json(rows)
    else:
        echo_table(rows, ["segment", "state", "first_seq", "last_seq", "capacity", "encoding"])


@wal.command()
@WAL_DIR
@output_option()
def stats(directory: Path, output: str) -> None:
    """Sizes, sequence range and the persisted ack state: the ack store's, with what the active
    segment's durable marks carry (read without locking)."""
    view = _tools().open_view(directory)
    checkpoint_error = None
    try:
        acks = _tools().read_acks(view)
    except WalError as exc:
        acks, checkpoint_error = None, str(exc)
    first = view.segments[0].first_seq if view.segments else None
    last_sealed = view.segments[-2].last_seq if len(view.segments) > 1 else None
    data: dict[str, Any] = {
        "path": str(directory), "encoding": view.encoding, "segments": len(view.segments),
        "spares": len(view.spares), "unreadable_segments": len(view.unreadable),
        "bytes": sum(s.header.capacity for s in view.segments + view.spares),
        "first_seq": first, "last_sealed_seq": last_sealed,
        "acked_watermark": acks.watermark if acks else None,
        "acked_above_watermark": acks.held if acks else None,
        "ack_ranges": acks.range_count if acks else None,
        "lost_records": acks.lost if acks else None,
        "quarantined_segments": sorted(acks.quarantined) if acks else [],
    }
    if checkpoint_error:
        data["checkpoint_error"] = checkpoint_error
    if output == "json":
        echo_json(data)
    else:
        echo_table([{"key": k, "value": v} for k, v in data.items()], ["key", "value"])


@wal.command()
@WAL_DIR
@output_option()
def repair(directory: Path, output: str) -> None:
    """Open the log for writing: erase torn tails, record and quarantine damage, then scrub every segment.

    Needs the directory's lock: stop the process that uses the log first.
    """
    result = _run_with_progress(_tools().repair, directory, "repairing")
    if output == "json":
        echo_json(result)
        return
    for msg in result["messages"]:
        click.echo(msg)
    click.echo(f"repaired: {result['truncated_bytes']} torn bytes erased, {result['lost_records']} records lost, "
               f"{len(result['quarantined'])} segments quarantined; next seq {result['next_seq']}")


@wal.command()
@WAL_DIR
@click.option("--out", "out", type=click.File("w"), default="-", help="Output file (default: stdout).")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, help="First sequence number to export.")
@click.option("--unacked-only", is_flag=True, help="Only records not yet acknowledged.")
def export(directory: Path, out, from_seq: int, unacked_only: bool) -> None:
    """Write every readable record as plain JSONL: {"seq": N, "event": ...}.

    Damaged ranges are named by seq on stderr, and the exit code is then 4.
    """
    n, report = _run_with_progress(_tools().export, directory, "exporting", out=out, from_seq=from_seq,
                                   unacked_only=unacked_only)
    _echo_damage(report)
    problems = len(report.damage) + len(report.unreadable)
    click.echo(f"exported {n} records" + (f"; {problems} damaged ranges or segments (see above)" if problems else ""),
               err=True)
    sys.exit(EXIT_OK if report.ok else EXIT_DAMAGE)
