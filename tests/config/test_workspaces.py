"""Workspace names, selection precedence, data directories, deep merge and the workspace files."""
from __future__ import annotations

from pathlib import Path

import pytest

from orgloop.config import workspaces as ws
from orgloop.config.models import WorkspaceFile
from orgloop.config.yamlfile import load_yaml
from support.projects import write


def test_deep_merge_merges_mappings_replaces_everything_else_and_shares_nothing():
    base = {"a": {"x": 1, "y": {"deep": 1}}, "l": [1, 2], "keep": {"k": [1]}}
    overlay = {"a": {"y": {"more": 2}, "z": 3}, "l": [3], "new": {"n": 1}}
    merged = ws.deep_merge(base, overlay)
    assert merged == {"a": {"x": 1, "y": {"deep": 1, "more": 2}, "z": 3}, "l": [3], "keep": {"k": [1]},
                      "new": {"n": 1}}
    merged["keep"]["k"].append(2)
    merged["new"]["n"] = 5
    assert base["keep"] == {"k": [1]} and overlay["new"] == {"n": 1}
    assert base["a"] == {"x": 1, "y": {"deep": 1}}


def test_a_scalar_overlay_replaces_a_mapping_and_the_reverse():
    assert ws.deep_merge({"a": {"x": 1}}, {"a": 5}) == {"a": 5}
    assert ws.deep_merge({"a": 5}, {"a": {"x": 1}}) == {"a": {"x": 1}}


@pytest.mark.parametrize("name", ["staging", "prod-eu_1", "A", "x" * 64])
def test_valid_names(name):
    assert ws.check_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-x", "_x", "x" * 65, "with space", "dot.name"])
def test_invalid_names(name):
    with pytest.raises(ws.WorkspaceError, match="invalid workspace name"):
        ws.check_name(name)


def test_selection_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("ORGLOOP_WORKSPACE", raising=False)
    assert ws.selection(tmp_path) == ("default", "default")
    write(tmp_path, ".orgloop/workspace", "stored\n")
    assert ws.selection(tmp_path) == ("stored", ".orgloop/workspace")
    monkeypatch.setenv("ORGLOOP_WORKSPACE", "fromenv")
    assert ws.selection(tmp_path) == ("fromenv", "ORGLOOP_WORKSPACE")
    assert ws.selected_workspace(tmp_path, "explicit") == "explicit"
    assert ws.selected_workspace(tmp_path) == "fromenv"


def test_a_bad_stored_selection_is_an_error_not_a_path(tmp_path, monkeypatch):
    monkeypatch.delenv("ORGLOOP_WORKSPACE", raising=False)
    write(tmp_path, ".orgloop/workspace", "../../etc\n")
    with pytest.raises(ws.WorkspaceError):
        ws.selected_workspace(tmp_path)


def test_data_dirs_are_per_project_and_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("ORGLOOP_HOME", str(tmp_path))
    assert ws.workspace_data_dir("eng", "default") == tmp_path / "data" / "eng" / "default"
    assert ws.workspace_data_dir("eng", "staging") == tmp_path / "data" / "eng" / "staging"
    assert ws.workspace_data_dir("@org/eng:x", "default") == tmp_path / "data" / "_org_eng_x" / "default"
    assert ws.workspace_data_dir("..", "default") == tmp_path / "data" / "_" / "default"
    assert ws.workspace_data_dir("eng", "staging", Path("/srv/x")) == Path("/srv/x")
    with pytest.raises(ws.WorkspaceError):
        ws.workspace_data_dir("eng", "../default")


def test_list_select_create_and_removal_checks(tmp_path, monkeypatch):
    monkeypatch.delenv("ORGLOOP_WORKSPACE", raising=False)
    assert ws.list_workspaces(tmp_path) == ["default"]
    path = ws.create_workspace(tmp_path, "staging")
    write(tmp_path, "workspaces/bad name.yaml", "")
    write(tmp_path, "workspaces/notes.txt", "")
    ws.create_workspace(tmp_path, "alpha")
    assert ws.list_workspaces(tmp_path) == ["default", "alpha", "staging"]
    with pytest.raises(ws.WorkspaceError, match="already exists"):
        ws.create_workspace(tmp_path, "staging")
    with pytest.raises(ws.WorkspaceError, match="always exists"):
        ws.create_workspace(tmp_path, "default")
    ws.select_workspace(tmp_path, "staging")
    assert ws.selected_workspace(tmp_path) == "staging"
    with pytest.raises(ws.WorkspaceError, match="does not exist"):
        ws.select_workspace(tmp_path, "nope")
    with pytest.raises(ws.WorkspaceError, match="is selected"):
        ws.check_removable(tmp_path, "staging", "staging")
    with pytest.raises(ws.WorkspaceError, match="cannot be deleted"):
        ws.check_removable(tmp_path, "default", "staging")
    with pytest.raises(ws.WorkspaceError, match="does not exist"):
        ws.check_removable(tmp_path, "nope", "staging")
    assert ws.check_removable(tmp_path, "alpha", "staging") == tmp_path / "workspaces" / "alpha.yaml"
    assert path == tmp_path / "workspaces" / "staging.yaml"


def test_the_skeleton_is_a_valid_workspace_file(tmp_path):
    path = ws.create_workspace(tmp_path, "qa")
    model = WorkspaceFile.model_validate(load_yaml(path).data)
    assert model.metadata.name == "qa" and model.variables == {}
    assert path.read_text().count("\n#") >= 10       # mostly commented guidance
