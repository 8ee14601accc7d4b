"""The CLI contract scripts rely on: exit codes of every command in every state, one output option,
plain text without a colour terminal, shell completion, and the lazy command table behind ``--help``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orgloop.cli import COMMANDS, _output, main
from orgloop.cli._exit import EXIT_ATTENTION, EXIT_DAMAGE, EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE
from orgloop.config.loader import load_project
from support.projects import write

EVENT = {"source": "heartbeat", "type": "resource.changed", "provenance": {"platform": "test"}, "payload": {}}


def _all_commands() -> list[tuple[str, ...]]:
    """Every leaf command as its argv path, e.g. ("wal", "verify")."""
    out: list[tuple[str, ...]] = []
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        command = main.get_command(ctx, name)
        if isinstance(command, click.Group):
            out += [(name, sub) for sub in command.list_commands(ctx)]
        else:
            out.append((name,))
    return out


# ------------------------------------------------------------------ the command table behind --help
def test_the_table_names_every_command_with_its_own_help():
    ctx = click.Context(main)
    for name, (_module, _attr, line) in COMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        own = " ".join((command.help or "").split())
        assert own.startswith(line.removesuffix("...")), (name, line, own[:100])


def test_help_lists_commands_without_importing_them():
    code = ("import sys; from click.testing import CliRunner; from orgloop.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in sys.modules if m.startswith(('orgloop.config.loader', 'orgloop.runtime', "
            "'pydantic', 'orgloop.cli.run', 'orgloop.wal'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


# ------------------------------------------------------------------ exit codes
@pytest.mark.parametrize("path", _all_commands(), ids=" ".join)
def test_a_bad_flag_is_a_usage_error_64_for_every_command(path, cli):
    result = cli(*path, "--no-such-flag")
    assert result.exit_code == EXIT_USAGE and "No such option" in result.stderr


def test_usage_errors_from_arguments_and_values_are_64_too(cli, demo):
    assert cli("nosuchcommand").exit_code == EXIT_USAGE
    assert cli("plan", "-p", demo, "-o", "yaml").exit_code == EXIT_USAGE
    assert cli("plan", "-p", demo, "--json", "-o", "human").exit_code == EXIT_USAGE     # aliases that disagree
    assert cli("start", "-p", demo, "--for", "0s").exit_code == EXIT_USAGE             # would never stop
    assert cli("start", "-p", demo, "--for", "1.5s").exit_code == EXIT_USAGE
    assert cli("inspect", "-p", demo, "widget", "x").exit_code == EXIT_USAGE
    assert cli("completion", "powershell").exit_code == EXIT_USAGE
    assert cli("dlq", "replay", "-p", demo).exit_code == EXIT_USAGE                    # no ids, no --all
    assert cli("workspace", "select", "-p", demo, "a/b").exit_code == EXIT_USAGE


@pytest.mark.parametrize("args", [["validate"], ["plan"], ["start", "--for", "1s"], ["stop"], ["status"], ["logs"],
                                  ["routes"], ["inspect", "route", "x"], ["dlq", "list"], ["workspace", "list"],
                                  ["test", "-"]])
def test_outside_a_project_every_project_command_is_an_error_1(args, cli, tmp_path):
    result = cli(*args, "-p", tmp_path, input=json.dumps(EVENT))
    assert result.exit_code == EXIT_ERROR and "no orgloop.yaml" in result.stderr


def test_exit_codes_of_a_project_through_its_life(cli, demo, tmp_path, home):
    event = write(tmp_path, "event.json", json.dumps(EVENT))
    other = write(tmp_path, "other.json", json.dumps({**EVENT, "type": "message.received"}))
    assert cli("validate", "-p", demo).exit_code == EXIT_OK
    assert cli("plan", "-p", demo).exit_code == EXIT_ATTENTION                 # changes: never started
    assert cli("status", "-p", demo).exit_code == EXIT_NOT_RUNNING
    assert cli("stop", "-p", demo).exit_code == EXIT_NOT_RUNNING
    assert cli("routes", "-p", demo).exit_code == EXIT_OK
    assert cli("inspect", "-p", demo, "route", "heartbeat-to-inbox").exit_code == EXIT_OK
    assert cli("inspect", "-p", demo, "route", "nope").exit_code == EXIT_ERROR
    assert cli("test", "-p", demo, event).exit_code == EXIT_OK
    assert cli("test", "-p", demo, other).exit_code == EXIT_ATTENTION           # nothing would be delivered
    assert cli("test", "-p", demo, "-", input="not json").exit_code == EXIT_ERROR
    assert cli("dlq", "list", "-p", demo).exit_code == EXIT_OK
    assert cli("dlq", "show", "-p", demo, "1").exit_code == EXIT_ERROR
    assert cli("start", "-p", demo, "--for", "300ms").exit_code == EXIT_OK
    assert cli("plan", "-p", demo).exit_code == EXIT_OK                         # no changes now
    assert cli("logs", "-p", demo).exit_code == EXIT_OK
    assert cli("workspace", "list", "-p", demo).exit_code == EXIT_OK
    assert cli("workspace", "select", "-p", demo, "nope").exit_code == EXIT_ERROR
    route = demo / "routes" / "heartbeat.yaml"
    route.write_text(route.read_text().replace("actor: inbox", "actor: nobody"))
    for args in (["validate"], ["plan"], ["start", "--for", "1s"], ["routes"], ["test", str(event)]):
        assert cli(*args, "-p", demo).exit_code == EXIT_ERROR, args             # an invalid project
    assert cli("init", demo).exit_code == EXIT_ERROR                            # not empty
    assert cli("schema").exit_code == EXIT_OK and cli("version").exit_code == EXIT_OK


def test_wal_verify_exit_codes(cli, tmp_path):
    from orgloop.wal import Wal

    with Wal(tmp_path / "wal", segment_size=64 << 10) as wal:
        for i in range(200):
            wal.append(b"record %d " % i + b"x" * 500)
    assert cli("wal", "verify", tmp_path / "wal").exit_code == EXIT_OK
    assert cli("wal", "verify", tmp_path).exit_code == EXIT_ERROR               # not a WAL directory
    assert cli("wal", "verify", tmp_path / "missing").exit_code == EXIT_USAGE    # no such directory
    segment = sorted((tmp_path / "wal").glob("*.wal"))[0]
    with open(segment, "r+b") as f:
        f.seek(2000)
        b = f.read(1)
        f.seek(2000)
        f.write(bytes([b[0] ^ 0x5A]))
    assert cli("wal", "verify", tmp_path / "wal").exit_code == EXIT_DAMAGE


def _orgloop(*args: object, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orgloop", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_exit_codes_of_the_real_process(demo, tmp_path, home):
    env = {**os.environ, "ORGLOOP_HOME": str(home)}
    assert _orgloop("plan", "--jsn", env=env, cwd=demo).returncode == EXIT_USAGE   # a typo is not "changes"
    assert _orgloop("plan", env=env, cwd=demo).returncode == EXIT_ATTENTION
    assert _orgloop("status", env=env, cwd=demo).returncode == EXIT_NOT_RUNNING
    r = _orgloop("status", env=env, cwd=tmp_path)
    assert r.returncode == EXIT_ERROR and "no orgloop.yaml" in r.stderr           # not "not running"
    assert _orgloop(env=env).returncode == EXIT_USAGE                             # no command: usage on stderr


# ------------------------------------------------------------------ output
@pytest.mark.parametrize("args", [["validate"], ["plan"], ["routes"], ["status"], ["inspect", "route",
                                  "heartbeat-to-inbox"], ["workspace", "list"], ["workspace", "show"], ["dlq", "list"]])
def test_o_json_is_json_and_json_is_its_alias(args, cli, demo):
    a = cli(*args, "-p", demo, "-o", "json")
    b = cli(*args, "-p", demo, "--json") if args[0] not in ("workspace", "validate") else a
    json.loads(a.stdout)
    assert a.stdout == b.stdout and a.exit_code == b.exit_code


def test_validate_and_logs_keep_format_as_an_alias(cli, demo):
    assert cli("validate", "-p", demo, "--format", "json").stdout == cli("validate", "-p", demo, "-o", "json").stdout


def test_routes_json_gives_lists_as_lists(cli, demo):
    rows = json.loads(cli("routes", "-p", demo, "-o", "json").stdout)
    assert rows == [{"name": "heartbeat-to-inbox", "source": "heartbeat", "events": ["resource.changed"],
                     "actor": "inbox", "transforms": ["only-changes", "once"]}]
    assert "only-changes,once" in cli("routes", "-p", demo).stdout             # the human table joins them


def _invalid(demo: Path) -> Path:
    route = demo / "routes" / "heartbeat.yaml"
    route.write_text(route.read_text().replace("actor: inbox", "actor: nobody"))
    return demo


@pytest.mark.parametrize("env, flag, coloured", [({}, [], True), ({"NO_COLOR": "1"}, [], False),
                                                 ({"NO_COLOR": ""}, [], True), ({"TERM": "dumb"}, [], False),
                                                 ({}, ["--no-color"], False)])
def test_colour_only_on_a_colour_terminal(demo, monkeypatch, env, flag, coloured):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(_output, "is_tty", lambda: True)
    result = CliRunner().invoke(main, [*flag, "validate", "-p", str(_invalid(demo))], color=True)
    assert ("\x1b[" in result.stdout) is coloured, result.stdout


def test_no_colour_when_not_a_terminal(demo):
    result = CliRunner().invoke(main, ["validate", "-p", str(_invalid(demo))], color=True)
    assert "\x1b[" not in result.stdout and "error:" in result.stdout


# ------------------------------------------------------------------ completion
@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "#compdef orgloop"),
                                           ("fish", "complete --no-files --command orgloop")])
def test_completion_scripts(cli, shell, marker):
    result = cli("completion", shell)
    assert result.exit_code == 0 and marker in result.stdout and "_ORGLOOP_COMPLETE" in result.stdout


def test_completion_completes_commands_and_subcommands(home):
    def complete(words: str) -> list[str]:
        env = {**os.environ, "_ORGLOOP_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        out = subprocess.run([sys.executable, "-m", "orgloop"], env=env, capture_output=True, text=True, timeout=60)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines()]

    assert complete("orgloop st") == ["start", "stop", "status"]
    assert sorted(complete("orgloop wal ")) == ["export", "inspect", "repair", "stats", "verify"]


# ------------------------------------------------------------------ identity of the data directory
def test_two_checkouts_with_one_name_never_share_a_data_directory(cli, tmp_path, home):
    a, b = tmp_path / "a" / "demo", tmp_path / "b" / "demo"
    for p in (a, b):
        assert cli("init", p).exit_code == 0
    assert load_project(a).data_dir != load_project(b).data_dir
    assert cli("start", "-p", a, "--for", "300ms").exit_code == 0
    assert cli("plan", "-p", a).exit_code == EXIT_OK
    assert cli("plan", "-p", b).exit_code == EXIT_ATTENTION                     # b's state is its own: empty
    owner = json.loads((load_project(a).data_dir / "owner.json").read_text())
    assert owner == {"name": "demo", "root": str(a.resolve())}


def test_a_shared_configured_data_directory_is_detected_and_named(cli, tmp_path, home):
    shared = tmp_path / "shared"
    a, b = tmp_path / "a" / "demo", tmp_path / "b" / "demo"
    for p in (a, b):
        assert cli("init", p).exit_code == 0
        text = (p / "orgloop.yaml").read_text()
        (p / "orgloop.yaml").write_text(text + f"runtime:\n  data_dir: {shared}\n")
    assert cli("start", "-p", a, "--for", "300ms").exit_code == 0
    for args in (["plan"], ["status"], ["start", "--for", "1s"], ["dlq", "list"]):
        r = cli(*args, "-p", b)
        assert r.exit_code == EXIT_ERROR, args
        assert (f"data directory {shared / 'default'} belongs to project 'demo' at {a.resolve()}" in r.stderr
                and f"not to project 'demo' at {b.resolve()}" in r.stderr), r.stderr


def test_data_of_the_old_layout_is_moved_to_the_project_once(cli, demo, home):
    old = write(home, "data/demo/default/applied-state.json", "{}").parent
    (old / "applied-state.json").unlink()
    write(old, "dlq/marker", "kept")
    r = cli("plan", "-p", demo)
    new = load_project(demo).data_dir
    assert f"note: moved this workspace's data from {old}" in r.stderr and f"to {new}" in r.stderr
    assert (new / "dlq" / "marker").read_text() == "kept" and not old.exists()
    assert "note:" not in cli("plan", "-p", demo).stderr                      # once


# ------------------------------------------------------------------ dlq follows -p / -w / ORGLOOP_HOME
def test_dlq_reads_the_dead_letters_of_the_projects_workspace(cli, demo, home):
    from orgloop.delivery.dlq import DeadLetterStore, dead_letter
    from orgloop.event import new_event

    data = load_project(demo).data_dir
    with DeadLetterStore(data / "dlq") as store:
        store.add_many([dead_letter(new_event("heartbeat", "resource.changed", {"n": i}), route="r", actor="a",
                                    reason="gave_up", error="boom", attempts=3) for i in range(3)])
    r = cli("dlq", "list", "-p", demo, "-o", "json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 3
    assert json.loads(cli("dlq", "list", "-p", demo, "-w", "staging", "-o", "json").stdout) == []
    first = json.loads(r.stdout)[0]["id"]
    shown = cli("dlq", "show", "-p", demo, str(first))
    assert shown.exit_code == 0 and "reason:    gave_up" in shown.stdout


# ------------------------------------------------------------------ workspace delete
@pytest.mark.slow
def test_workspace_delete_refuses_a_running_workspace_without_force(demo, home):
    env = {**os.environ, "ORGLOOP_HOME": str(home)}
    r = _orgloop("start", "-p", demo, "-w", "staging", "--daemon", env=env)
    assert r.returncode == 0, r.stderr
    data = load_project(demo, workspace="staging").data_dir
    pid = int((data / "orgloop.pid").read_text())
    try:
        r = _orgloop("workspace", "delete", "-p", demo, "staging", env=env)
        assert r.returncode == EXIT_ERROR and f"it is running (pid {pid})" in r.stderr
        assert (demo / "workspaces" / "staging.yaml").exists()
        r = _orgloop("workspace", "delete", "-p", demo, "staging", "--force", "--purge-data", "--yes", env=env)
        assert r.returncode == 0, r.stderr
        assert f"Stopped its runtime (pid {pid})" in r.stdout and not data.exists()
        assert not (demo / "workspaces" / "staging.yaml").exists()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
