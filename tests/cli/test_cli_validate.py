"""``orgloop validate``: the whole output on the broken project (golden files), exit codes and formats."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orgloop.cli import _output, main
from support.projects import BROKEN, STARTER, copy_project, write

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ORGLOOP_UPDATE_GOLDEN") == "1"   # rewrite the golden files instead of comparing


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def golden(name: str, text: str) -> str:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8")


@pytest.mark.usefixtures("orgloop_env", "installed_plugins_only")
def test_broken_project_human_output_is_exactly_the_golden_file():
    result = run("validate", "-p", str(BROKEN))
    assert result.exit_code == 1
    assert result.stdout == golden("validate_broken.txt", result.stdout)


@pytest.mark.usefixtures("orgloop_env", "installed_plugins_only")
def test_broken_project_json_output_is_exactly_the_golden_file():
    result = run("validate", "-p", str(BROKEN), "--format", "json")
    assert result.exit_code == 1
    assert result.stdout == golden("validate_broken.json", result.stdout)
    report = json.loads(result.stdout)
    assert report["summary"]["errors"] == sum(d["severity"] == "error" for d in report["diagnostics"])
    assert report["summary"]["valid"] is False and report["summary"]["files"] == 10


@pytest.mark.usefixtures("orgloop_env")
def test_the_golden_output_is_sorted_and_covers_every_problem_class():
    text = (GOLDEN / "validate_broken.txt").read_text()
    *problems, summary = text.splitlines()
    keys = [(p.split(":")[0], int(p.split(":")[1]), int(p.split(":")[2])) for p in problems]
    assert keys == sorted(keys)
    for words in ("YAML syntax error", "unknown key 'whenn'", "(did you mean 'when'?)", "expected a valid integer",
                  "invalid duration", "invalid rate", "duplicate route", "already defined at", "unknown source",
                  "unknown actor", "unknown transform", "unknown event type", "not found", "prompt_file '../../",
                  "script '../../../escape.sh' is outside", "plugin '@orgloop/connector-slack' is installed",
                  "warning: possible event loop", "route ping-pong -> actor loop-writer -> source loop-reader",
                  "duplicate key 'path'", "apiVersion: expected", "override for unknown actor 'inboxx'",
                  "connectors/unlisted.yaml:1:1: warning: not listed"):
        assert words in text, words
    errors, warnings = sum(": error: " in p for p in problems), sum(": warning: " in p for p in problems)
    assert errors + warnings == len(problems)
    assert summary == f"{errors} errors, {warnings} warnings in 10 files"


def test_a_valid_project_exits_0_with_a_summary(tmp_path, orgloop_env):
    project = copy_project(STARTER, tmp_path / "p")
    result = run("validate", "-p", str(project))
    assert (result.exit_code, result.stdout) == (0, 'Project "starter" is valid (6 files, 1 route).\n')
    result = run("validate", "-p", str(project), "-w", "staging")
    assert result.stdout == 'Project "starter" is valid in workspace "staging" (6 files, 1 route).\n'


def test_warnings_alone_keep_exit_0(tmp_path, orgloop_env):
    project = copy_project(STARTER, tmp_path / "p")
    path = project / "routes" / "heartbeat.yaml"
    path.write_text(path.read_text().replace("source: heartbeat", "source: nothing-*"))
    result = run("validate", "-p", str(project))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "routes/heartbeat.yaml:7:15: warning: source pattern 'nothing-*' matches no source",
        'Project "starter" is valid with 1 warning (6 files, 1 route).']


def test_the_project_is_found_upwards_from_the_current_directory(tmp_path, orgloop_env, monkeypatch):
    project = copy_project(STARTER, tmp_path / "p")
    monkeypatch.chdir(project / "routes")
    result = run("validate")
    assert result.exit_code == 0 and "is valid" in result.stdout


def test_an_explicit_project_dir_is_not_searched_upwards(tmp_path, orgloop_env):
    project = copy_project(STARTER, tmp_path / "p")
    result = run("validate", "-p", str(project / "routes"))
    assert result.exit_code == 1 and "no orgloop.yaml in" in result.stderr
    assert run("validate", "-p", str(project / "orgloop.yaml")).exit_code == 0


def test_no_project_exits_1_in_both_formats(tmp_path, orgloop_env):
    result = run("validate", "-p", str(tmp_path))
    assert result.exit_code == 1 and result.stdout == "" and result.stderr.startswith("Error: no orgloop.yaml")
    result = run("validate", "-p", str(tmp_path), "--format", "json")
    assert result.exit_code == 1 and json.loads(result.stdout)["error"].startswith("no orgloop.yaml")


def test_an_unreadable_project_file_exits_1(tmp_path, orgloop_env):
    write(tmp_path, "orgloop.yaml", "").write_bytes(b"\xff\xfe\x00")
    result = run("validate", "-p", str(tmp_path))
    assert result.exit_code == 1 and "cannot read" in result.stderr


def test_a_syntax_error_in_orgloop_yaml_is_an_error_not_unreadable(tmp_path, orgloop_env):
    write(tmp_path, "orgloop.yaml", "apiVersion: [\n")
    result = run("validate", "-p", str(tmp_path))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith("orgloop.yaml:2:1: error: YAML syntax error:")


def test_an_invalid_workspace_name_is_a_usage_error(tmp_path, orgloop_env):
    project = copy_project(STARTER, tmp_path / "p")
    result = run("validate", "-p", str(project), "-w", "../etc")
    assert result.exit_code == 64 and "invalid workspace name" in result.stderr


def test_colour_only_on_a_tty(tmp_path, orgloop_env, monkeypatch):
    project = copy_project(STARTER, tmp_path / "p")
    path = project / "routes" / "heartbeat.yaml"
    path.write_text(path.read_text().replace("actor: inbox", "actor: nobody"))
    plain = run("validate", "-p", str(project))
    assert "\x1b[" not in plain.stdout
    monkeypatch.setattr(_output, "is_tty", lambda: True)
    coloured = CliRunner().invoke(main, ["validate", "-p", str(project)], color=True)
    assert "\x1b[31m" in coloured.stdout and coloured.exit_code == plain.exit_code == 1
    assert click.unstyle(coloured.stdout) == plain.stdout
