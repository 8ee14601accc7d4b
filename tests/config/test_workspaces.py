"""Workspace names, selection precedence, data directories, deep merge and the workspace files."""
from __future__ import annotations

import os

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


def test_data_dirs_are_per_project_path_and_workspace(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("ORGLOOP_HOME", str(tmp_path))
    root = Path("/src/eng")
    h = hashlib.sha256(b"/src/eng").hexdigest()[:8]
    assert ws.workspace_data_dir("eng", root, "default") == tmp_path / "data" / f"eng-{h}" / "default"
    assert ws.workspace_data_dir("eng", root, "staging") == tmp_path / "data" / f"eng-{h}" / "staging"
    assert ws.workspace_data_dir("@org/eng:x", root, "default") == tmp_path / "data" / f"_org_eng_x-{h}" / "default"
    assert ws.workspace_data_dir("..", root, "default") == tmp_path / "data" / f"_-{h}" / "default"
    assert ws.workspace_data_dir("eng", root, "staging", Path("/srv/x")) == Path("/srv/x")
    other = ws.workspace_data_dir("eng", Path("/src/eng2"), "default")        # same name, another checkout
    assert other != ws.workspace_data_dir("eng", root, "default") and other.parent.name.startswith("eng-")
    with pytest.raises(ws.WorkspaceError):
        ws.workspace_data_dir("eng", root, "../default")


def test_a_data_dir_records_its_owner_and_refuses_another_project(tmp_path):
    data = tmp_path / "shared" / "default"
    ws.claim_data_dir(data, "eng", tmp_path / "a")
    assert ws.read_owner(data) == {"name": "eng", "root": str(tmp_path / "a")}
    ws.claim_data_dir(data, "eng", tmp_path / "a")                             # the owner again: fine
    for name, root in (("eng", tmp_path / "b"), ("ops", tmp_path / "a")):
        with pytest.raises(ws.DataDirError) as info:
            ws.claim_data_dir(data, name, root)
        message = str(info.value)
        assert f"belongs to project 'eng' at {tmp_path / 'a'}" in message and f"not to project {name!r} at {root}" in message


def test_the_old_name_only_layout_is_moved_once_unless_a_runtime_uses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ORGLOOP_HOME", str(tmp_path))
    old = write(tmp_path, "data/eng/default/wal/00000001.wal", "x").parent.parent
    write(old, "orgloop.pid", f"{os.getpid()}\n")                 # a live pid: left where it is
    assert ws.adopt_legacy_data_dir("eng", tmp_path / "a", "default") is None and old.is_dir()
    (old / "orgloop.pid").unlink()
    assert ws.adopt_legacy_data_dir("eng", tmp_path / "a", "default") == old
    new = ws.workspace_data_dir("eng", tmp_path / "a", "default")
    assert (new / "wal" / "00000001.wal").read_text() == "x" and not old.exists()
    assert not (tmp_path / "data" / "eng").exists()                      # the emptied name folder is gone
    assert ws.read_owner(new) == {"name": "eng", "root": str(tmp_path / "a")}
    write(tmp_path, "data/eng/default/wal/x", "y")                       # once: the new directory exists now
    assert ws.adopt_legacy_data_dir("eng", tmp_path / "a", "default") is None


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


def _claim_many(args):
    from orgloop.config import workspaces as w

    dirs, root = args
    for d in dirs:
        w.claim_data_dir(Path(d), "proj", Path(root))


def test_fleet_members_claiming_one_data_dir_at_once_all_succeed(tmp_path):
    """Fleet members share a data directory and may record its owner at the same moment; each must get
    there (a shared temp file name made the slower one's rename fail, and that member exited)."""
    import multiprocessing

    dirs = [str(tmp_path / f"d{i}") for i in range(150)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(4) as pool:
        pool.map(_claim_many, [(dirs, tmp_path / "proj")] * 4)
    for d in dirs:
        assert ws.read_owner(Path(d)) == {"name": "proj", "root": str((tmp_path / "proj").absolute())}
        assert [p.name for p in Path(d).iterdir()] == ["owner.json"]
