"""The shared helpers of cli/_project.py, through a command built the way plan/start use them."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orgloop.cli._project import project_options
from orgloop.cli._run_context import load_checked
from support.projects import STARTER, copy_project, write


@click.command()
@project_options
def probe(project_dir: Path | None, workspace: str | None) -> None:
    project = load_checked(project_dir, workspace)
    click.echo(f"{project.name} {project.workspace} {len(project.routes)}")


@pytest.fixture
def project(tmp_path, orgloop_env):
    return copy_project(STARTER, tmp_path / "p")


def test_a_valid_project_in_the_chosen_workspace(project, monkeypatch):
    assert CliRunner().invoke(probe, ["-p", str(project)]).stdout == "starter default 1\n"
    assert CliRunner().invoke(probe, ["--project", str(project), "-w", "staging"]).stdout == "starter staging 1\n"
    monkeypatch.setenv("ORGLOOP_WORKSPACE", "staging")
    monkeypatch.chdir(project / "sops")
    assert CliRunner().invoke(probe, []).stdout == "starter staging 1\n"


def test_errors_are_printed_like_validate_and_exit_1(project):
    write(project, "routes/more.yaml", "apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n"
          "  - name: r\n    when: {source: nowhere}\n    then: {actor: inbox}\n")
    result = CliRunner().invoke(probe, ["-p", str(project)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "routes/more.yaml:5:20: error: unknown source 'nowhere'",
        "Error: the project has 1 error; fix it first (`orgloop validate` lists them too). Nothing was done."]


def test_no_project_and_a_bad_stored_selection_exit_1(project, tmp_path):
    result = CliRunner().invoke(probe, ["-p", str(tmp_path / "empty")])
    assert result.exit_code == 1 and result.stderr.startswith("Error: no orgloop.yaml in ")
    write(project, ".orgloop/workspace", "../../x\n")
    result = CliRunner().invoke(probe, ["-p", str(project)])
    assert result.exit_code == 1 and "invalid workspace name '../../x'" in result.stderr


def test_loading_for_a_command_leaves_the_collector_on_and_the_project_frozen(project):
    import gc

    gc.unfreeze()
    try:
        assert CliRunner().invoke(probe, ["-p", str(project)]).exit_code == 0
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
