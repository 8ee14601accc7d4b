"""The ``orgloop`` command line: one module per command group, imported only when that command runs.

``orgloop --help`` and shell completion of command names read :data:`COMMANDS` and import nothing else,
so they stay fast. Exit codes follow one contract for every command (``docs/operations.md``):
0 ok, 1 error, 2 a documented "needs attention" state, 3 not running, 4 damage found, 64 usage error.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

import click

from orgloop.cli import _output
from orgloop.cli._exit import EXIT_USAGE

__all__ = ["main", "COMMANDS"]

# command name -> (module under orgloop.cli, attribute, its one-line help as `orgloop --help` shows it).
# tests/cli/test_cli_contract.py checks that each line is the command's own short help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("init", "init", "Create a runnable example project in DIRECTORY (default: the current..."),
    "validate": ("validate", "validate", "Check every project file: syntax, schema, references, prompt..."),
    "plan": ("plan", "plan", "Show what `orgloop start` would add (+), change (~) or remove (-)."),
    "start": ("run", "start", "Validate, plan and start the workspace's runtime, or reconcile the..."),
    "stop": ("run", "stop", "Stop the workspace's runtime and wait."),
    "status": ("run", "status", "Sources, routes, queues, breakers and the WAL of the running runtime."),
    "logs": ("run", "logs", "Print the pipeline log written by the workspace's file logger (JSON..."),
    "top": ("live", "top", "A live table of per-source and per-route rates, queue depths, WAL lag,..."),
    "tap": ("live", "tap", "Print the events the router hands to routes, live, as JSON lines ({route,..."),
    "test": ("inspect", "test_cmd", "Route the event in EVENT_FILE (JSON, '-' for stdin) in dry-run and..."),
    "routes": ("inspect", "routes", "List the project's routes: name, source, event types, actor,..."),
    "inspect": ("inspect", "inspect", "Show one resolved definition (workspace overrides and defaults..."),
    "workspace": ("workspace", "workspace", "Environments of one project, each with its own variables,..."),
    "dlq": ("dlq", "dlq", "Inspect and replay events that gave up on a route (dead letters)."),
    "wal": ("wal", "wal", "Inspect and maintain a write-ahead-log directory."),
    "schema": ("schema", "schema", "Print the JSON Schema (draft 2020-12) of orgloop project files."),
    "plugins": ("plugins", "plugins", "List installed plugins: kind, name, distribution, version and config..."),
    "demo": ("demo", "demo", "Append durably from several threads in a child process, SIGKILL it..."),
    "hook": ("hook", "hook", "Bridge an agent's lifecycle hooks to the running runtime."),
    "completion": ("completion", "completion", "Print the shell completion script for bash, zsh or fish."),
    "version": ("completion", "version_cmd", "Print the version and which implementations (compiled or..."),
}


class LazyGroup(click.Group):
    """A group whose subcommands live in :data:`COMMANDS` and are imported on first use; usage errors
    anywhere below it exit 64 (EX_USAGE) instead of click's 2, which orgloop reserves for "needs attention"."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(import_module(f"orgloop.cli.{entry[0]}"), entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` from :data:`COMMANDS` (nothing imported)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_m, _a, help_) in COMMANDS.items()])

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[Any]:
        """Complete command names from :data:`COMMANDS`, without importing every command."""
        from click.shell_completion import CompletionItem

        items = [CompletionItem(name, help=help_) for name, (_m, _a, help_) in COMMANDS.items()
                 if name.startswith(incomplete)]
        return items + click.Command.shell_complete(self, ctx, incomplete)      # and the group's options

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # click declares it per class (2)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = EXIT_USAGE  # type: ignore[misc]  # click declares it per class (2)
            raise


def _no_color(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        _output.disable_color()
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(None, "--version", package_name="orgloop", message="orgloop %(version)s",
                      prog_name="orgloop")
@click.option("--no-color", is_flag=True, expose_value=False, is_eager=True, callback=_no_color,
              help="Plain text without colour (also: NO_COLOR set, TERM=dumb, or output not a terminal).")
def main() -> None:
    """orgloop: route events from sources to AI agents and commands, durably."""
