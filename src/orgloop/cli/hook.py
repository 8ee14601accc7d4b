"""``orgloop hook``: bridges a coding agent's hooks to the running runtime's ingress listener.

``orgloop hook claude-code-stop`` is what Claude Code's ``Stop`` hook runs. It reads the hook JSON on
stdin (``session_id``, ``cwd``, ``transcript_path``, ``hook_event_name``) and posts ``{session_id,
working_directory, duration_seconds, exit_status, summary, transcript_path}`` to
``http://127.0.0.1:<--port, ORGLOOP_PORT or 4800>/webhook/<--source, default claude-code>``.
``claude-code-start`` does the same for the ``SessionStart`` hook.

An agent's hook must never feel broken: when no runtime listens, it exits 0 without a word. A refusal
(non-2xx) exits 1 with the answer on stderr; stdin that is not a JSON object is a usage error (64).
"""
from __future__ import annotations

import http.client
import json
import sys
from typing import Any

import click

from orgloop.connectors.ingress import ingress_address
from orgloop.errors import OrgloopError

__all__ = ["hook"]


@click.group()
def hook() -> None:
    """Bridge an agent's lifecycle hooks to the running runtime."""


def _options(f: Any) -> Any:
    f = click.option("--port", type=click.IntRange(1, 65535), default=None,
                     help="ingress port (default: ORGLOOP_PORT or 4800)")(f)
    f = click.option("--source", "source_id", default="claude-code", show_default=True,
                     help="the source id the hook posts to (/webhook/<source>)")(f)
    return click.option("--timeout", type=float, default=10.0, show_default=True, help="seconds to wait")(f)


def _read_stdin() -> dict[str, Any]:
    text = sys.stdin.read()
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise click.UsageError(f"stdin is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise click.UsageError("stdin must be a JSON object (the hook's input)")
    return data


def _post(body: dict[str, Any], source_id: str, port: int | None, timeout: float) -> None:
    try:
        host, port_ = ingress_address(None, port)
    except OrgloopError as exc:
        raise click.UsageError(str(exc)) from None
    data = json.dumps(body).encode()
    conn = http.client.HTTPConnection(host, port_, timeout=timeout)
    try:
        conn.request("POST", f"/webhook/{source_id}", data, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = resp.read().decode(errors="replace").strip()
    except (ConnectionRefusedError, ConnectionResetError):
        return                       # no runtime is listening: stay silent, exit 0
    except OSError as exc:
        click.echo(f"orgloop hook: could not post to {host}:{port_}: {exc}", err=True)
        sys.exit(1)
    finally:
        conn.close()
    if not 200 <= resp.status < 300:
        click.echo(f"orgloop hook: the runtime answered {resp.status}: {answer}", err=True)
        sys.exit(1)


@hook.command("claude-code-stop")
@_options
def claude_code_stop(port: int | None, source_id: str, timeout: float) -> None:
    """Post a Claude Code Stop hook (JSON on stdin) as an ``actor.stopped`` event."""
    data = _read_stdin()
    body = {"session_id": data.get("session_id", ""),
            "working_directory": data.get("working_directory") or data.get("cwd") or "",
            "duration_seconds": data.get("duration_seconds", 0), "exit_status": data.get("exit_status", 0),
            "summary": data.get("summary", ""), "transcript_path": data.get("transcript_path", "")}
    _post(body, source_id, port, timeout)


@hook.command("claude-code-start")
@_options
def claude_code_start(port: int | None, source_id: str, timeout: float) -> None:
    """Post a Claude Code SessionStart hook (JSON on stdin) as a ``resource.changed`` event."""
    data = _read_stdin()
    body = {"session_id": data.get("session_id", ""), "hook_event_name": "SessionStart",
            "working_directory": data.get("working_directory") or data.get("cwd") or "",
            "transcript_path": data.get("transcript_path", ""), "source": data.get("source", "")}
    _post(body, source_id, port, timeout)
