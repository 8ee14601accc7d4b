"""``orgloop workspace list | select | new | show | delete``."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from orgloop.config.workspaces import workspace_data_dir
from orgloop.cli import main
from support.projects import STARTER, copy_project, write


@pytest.fixture
def project(tmp_path, orgloop_env):
    return copy_project(STARTER, tmp_path / "p")


def run(project, *args, input=None):
    return CliRunner().invoke(main, ["workspace", *args, "-p", str(project)], input=input)


def test_list_marks_the_selected_workspace(project, monkeypatch):
    write(project, "workspaces/production.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\n")
    assert run(project, "list").stdout == "* default\n  production\n  staging\n"
    assert run(project, "select", "staging").stdout == 'Switched to workspace "staging"\n'
    assert run(project, "list").stdout == "  default\n  production\n* staging\n"
    assert (project / ".orgloop" / "workspace").read_text() == "staging\n"
    assert run(project, "list", "-w", "production").stdout == "  default\n* production\n  staging\n"
    monkeypatch.setenv("ORGLOOP_WORKSPACE", "default")
    assert run(project, "list").stdout == "* default\n  production\n  staging\n"


def test_list_shows_a_selection_that_has_no_file(project, monkeypatch):
    monkeypatch.setenv("ORGLOOP_WORKSPACE", "gone")
    assert run(project, "list").stdout == "  default\n  staging\n* gone (missing: no workspaces/gone.yaml)\n"


def test_select_refuses_unknown_and_invalid_names(project):
    result = run(project, "select", "prod")
    assert result.exit_code == 1 and "workspace 'prod' does not exist" in result.stderr
    assert not (project / ".orgloop" / "workspace").exists()
    result = run(project, "select", "a/b")
    assert result.exit_code == 64 and "invalid workspace name" in result.stderr


def test_select_warns_when_the_environment_overrides_it(project, monkeypatch):
    monkeypatch.setenv("ORGLOOP_WORKSPACE", "default")
    result = run(project, "select", "staging")
    assert result.exit_code == 0 and "ORGLOOP_WORKSPACE=default is set and takes precedence" in result.stderr


def test_new_writes_a_skeleton_that_validates_and_refuses_existing(project):
    result = run(project, "new", "qa")
    assert result.exit_code == 0, result.output
    assert (project / "workspaces" / "qa.yaml").is_file()
    check = CliRunner().invoke(main, ["validate", "-p", str(project), "-w", "qa"])
    assert check.exit_code == 0, check.output
    again = run(project, "new", "qa")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert run(project, "new", "default").exit_code == 1
    assert run(project, "new", "bad name").exit_code == 64


def test_show_prints_selection_file_data_dir_and_masked_variables(project, orgloop_env):
    write(project, "workspaces/prod.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\nvariables:\n"
          "  API_TOKEN: t0ps3cret\n  db_password: hunter2\n  SIGNING_KEY: k\n  Client_Secret: s\n"
          "  REGION: eu-west-1\n  DEBUG: true\n")
    result = run(project, "show", "-w", "prod")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "workspace:   prod (selected by --workspace)",
        "file:        workspaces/prod.yaml",
        f"data dir:    {workspace_data_dir('starter', project, 'prod')}",
        "variables:",
        "  API_TOKEN = ********",
        "  Client_Secret = ********",
        "  DEBUG = true",
        "  REGION = eu-west-1",
        "  SIGNING_KEY = ********",
        "  db_password = ********",
    ]
    for secret in ("t0ps3cret", "hunter2"):
        assert secret not in result.output


def test_show_the_default_workspace(project, orgloop_env):
    assert run(project, "show").stdout.splitlines() == [
        "workspace:   default (selected by default)",
        "file:        (none; the base project as is)",
        f"data dir:    {workspace_data_dir('starter', project, 'default')}",
        "variables:   (none)",
    ]
    run(project, "select", "staging")
    assert run(project, "show").stdout.splitlines()[0] == "workspace:   staging (selected by .orgloop/workspace)"


def test_show_an_unknown_or_broken_workspace(project):
    result = run(project, "show", "-w", "nope")
    assert result.exit_code == 1 and "workspace 'nope' does not exist" in result.stderr
    write(project, "workspaces/broken.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\nvariabls: {}\n")
    result = run(project, "show", "-w", "broken")
    assert result.exit_code == 0 and "unavailable: workspaces/broken.yaml has errors" in result.stdout


def test_delete_refuses_default_selected_and_unknown(project):
    assert run(project, "delete", "default").exit_code == 1
    run(project, "select", "staging")
    result = run(project, "delete", "staging")
    assert result.exit_code == 1 and "is selected" in result.stderr
    assert (project / "workspaces" / "staging.yaml").is_file()
    assert run(project, "delete", "nope").exit_code == 1


def test_delete_refuses_state_keeps_data_with_force_and_purging_asks_first(project, orgloop_env):
    data = workspace_data_dir("starter", project, "staging")
    other = workspace_data_dir("starter", project, "default")
    for d in (data, other):
        write(d, "wal/00000001.wal", "x")
    text = (project / "workspaces" / "staging.yaml").read_text()
    refused = run(project, "delete", "staging")            # it has state: neither deleted nor orphaned
    assert refused.exit_code == 1 and "has state in" in refused.stderr and "--purge-data" in refused.stderr
    assert (project / "workspaces" / "staging.yaml").exists()
    result = run(project, "delete", "staging", "--force")
    assert result.exit_code == 0 and not (project / "workspaces" / "staging.yaml").exists() and data.exists()
    assert f"Its data directory {data} was kept" in result.stdout

    write(project, "workspaces/staging.yaml", text)
    declined = run(project, "delete", "staging", "--purge-data", input="n\n")
    assert declined.exit_code == 1 and data.exists() and (project / "workspaces" / "staging.yaml").exists()
    accepted = run(project, "delete", "staging", "--purge-data", input="y\n")
    assert accepted.exit_code == 0 and not data.exists() and other.exists()
    assert not (project / "workspaces" / "staging.yaml").exists()


def test_delete_purge_with_yes_does_not_ask(project, orgloop_env):
    data = workspace_data_dir("starter", project, "staging")
    write(data, "checkpoints/heartbeat.json", "{}")
    result = run(project, "delete", "staging", "--purge-data", "--yes")
    assert result.exit_code == 0 and not data.exists()
    assert f"Deleted its data directory {data}" in result.stdout


def test_workspace_commands_without_a_project_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["workspace", "list", "-p", str(tmp_path)])
    assert result.exit_code == 1 and "no orgloop.yaml" in result.stderr
