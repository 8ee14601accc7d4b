"""Loading projects: workspaces (variables, overrides, data dirs), positions, and the cross-file checks."""
from __future__ import annotations

import os

import pytest

from orgloop.config.workspaces import workspace_data_dir
from orgloop.config.checks import check_project
from orgloop.config.loader import ProjectNotFound, check_every_file, load_project
from orgloop.config.resolve import to_runtime_spec
from support.projects import STARTER, copy_project, write

ROUTE = """\
apiVersion: orgloop/v1alpha1
kind: RouteGroup
routes:
  - name: {name}
    when:
      source: {source}
    then:
      actor: {actor}
"""


def lines(project):
    return [d.format(project.root) for d in project.sorted_diagnostics()]


@pytest.fixture
def starter(tmp_path, orgloop_env):
    return copy_project(STARTER, tmp_path / "starter")


def test_the_starter_project_is_valid_in_both_workspaces(starter):
    for workspace in ("default", "staging"):
        project = check_project(load_project(starter, workspace=workspace))
        assert lines(project) == []
        assert set(project.sources) == {"heartbeat"} and set(project.routes) == {"heartbeat-to-inbox"}


def test_two_workspaces_get_two_data_dirs_variables_and_deep_merged_overrides(starter, orgloop_env):
    base = load_project(starter)
    staging = load_project(starter, workspace="staging")
    assert base.data_dir == workspace_data_dir("starter", starter, "default")
    assert staging.data_dir == workspace_data_dir("starter", starter, "staging")
    assert base.data_dir.parent.parent == orgloop_env / "data"
    assert to_runtime_spec(staging).data_dir != to_runtime_spec(base).data_dir
    # ${INBOX_PATH:-out/inbox.jsonl} takes the workspace variable
    assert base.actors["inbox"].model.config["path"] == "out/inbox.jsonl"
    assert staging.actors["inbox"].model.config["path"] == "out/staging-inbox.jsonl"
    # the override changes one key of config and keeps its siblings
    assert base.sources["heartbeat"].model.config == {"rate": 5, "payload_size": 32}
    assert staging.sources["heartbeat"].model.config == {"rate": 1, "payload_size": 32}


def test_the_shell_wins_over_workspace_variables_which_win_over_dotenv(starter, monkeypatch):
    write(starter, ".env", "INBOX_PATH=from-dotenv\nPROJECT_NAME=named-by-dotenv\n")
    assert load_project(starter).actors["inbox"].model.config["path"] == "from-dotenv"
    assert load_project(starter).name == "named-by-dotenv"
    assert load_project(starter, workspace="staging").actors["inbox"].model.config["path"] == \
        "out/staging-inbox.jsonl"
    monkeypatch.setenv("INBOX_PATH", "from-shell")
    assert load_project(starter, workspace="staging").actors["inbox"].model.config["path"] == "from-shell"


def test_a_configured_data_dir_still_separates_workspaces(starter):
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text() + "runtime:\n  data_dir: state\n")
    assert load_project(starter).data_dir == starter / "state" / "default"
    assert load_project(starter, workspace="staging").data_dir == starter / "state" / "staging"
    assert load_project(starter, data_dir=starter / "x").data_dir == starter / "x"


def test_workspace_defaults_and_runtime_are_merged_over_the_project(starter):
    write(starter, "workspaces/fast.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\n"
          "defaults:\n  poll_interval: 10s\nruntime:\n  bus: memory\n")
    project = load_project(starter, workspace="fast")
    assert project.settings.defaults.poll_interval == "10s" and project.settings.runtime.bus == "memory"
    assert project.settings.metadata.name == "starter"


def test_errors_in_overridden_values_are_reported_in_the_workspace_file(starter):
    write(starter, "workspaces/bad.yaml", """\
apiVersion: orgloop/v1alpha1
kind: Workspace
defaults:
  poll_interval: soon
sources:
  heartbeat:
    poll:
      interval: 5 minutes
    confg: {}
  hartbeat:
    config: {}
""")
    project = check_project(load_project(starter, workspace="bad"))
    assert lines(project) == [
        "workspaces/bad.yaml:4:18: error: defaults.poll_interval: invalid duration 'soon': expected a whole "
        "number and one of ms, s, m, h, d (e.g. '30s')",
        "workspaces/bad.yaml:8:17: error: sources[0].poll.interval: invalid duration '5 minutes': expected a "
        "whole number and one of ms, s, m, h, d (e.g. '30s')",
        "workspaces/bad.yaml:9:5: error: unknown key 'confg' in sources[0] (did you mean 'config'?)",
        "workspaces/bad.yaml:10:3: error: override for unknown source 'hartbeat' (did you mean 'heartbeat'?)",
    ]


def test_an_unknown_workspace_is_an_error(starter):
    project = load_project(starter, workspace="nope")
    assert lines(project) == ["orgloop.yaml:1:1: error: workspace 'nope' does not exist (expected "
                              "workspaces/nope.yaml; create it with `orgloop workspace new nope`)"]


def test_dotenv_errors_point_at_their_line(starter):
    write(starter, ".env", "# comment\nGOOD=1\nnot a pair\n")
    assert lines(load_project(starter)) == [".env:3:1: error: expected KEY=VALUE, got 'not a pair'"]


def test_no_or_unreadable_project_file_raises(tmp_path):
    with pytest.raises(ProjectNotFound):
        load_project(tmp_path)
    (tmp_path / "orgloop.yaml").write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ProjectNotFound, match="cannot read"):
        load_project(tmp_path)


def test_references_of_items_with_schema_errors_are_still_checked(starter):
    write(starter, "routes/extra.yaml", ROUTE.format(name="r1", source="hartbeat", actor="inbx")
          + "    bogus: 1\n")
    project = check_project(load_project(starter))
    assert lines(project) == [
        "routes/extra.yaml:6:15: error: unknown source 'hartbeat' (did you mean 'heartbeat'?)",
        "routes/extra.yaml:8:14: error: unknown actor 'inbx' (did you mean 'inbox'?)",
        "routes/extra.yaml:9:5: error: unknown key 'bogus' in routes[0]",
    ]
    assert "r1" not in project.routes and [d.name for d in project.invalid["routes"]] == ["r1"]


def test_references_to_invalid_items_are_not_reported_twice(starter):
    write(starter, "connectors/more.yaml", "apiVersion: orgloop/v1alpha1\nkind: ConnectorGroup\n"
          "sources:\n  - id: broken-src\n    connector: generator\n    poll: {interval: never}\n")
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text().replace("  - connectors/connectors.yaml\n",
                                             "  - connectors/connectors.yaml\n  - connectors/more.yaml\n"))
    write(starter, "routes/extra.yaml", ROUTE.format(name="r1", source="broken-src", actor="inbox"))
    assert [line.split(": error: ")[0] for line in lines(check_project(load_project(starter)))] == [
        "connectors/more.yaml:6:22"]


def test_a_file_listed_twice_or_by_overlapping_globs_loads_once(starter):
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text().replace("  - connectors/connectors.yaml\n",
                                             "  - connectors/connectors.yaml\n  - connectors/*.yaml\n"))
    project = load_project(starter)
    assert lines(project) == [] and project.files.count((starter / "connectors" / "connectors.yaml").resolve()) == 1
    assert len(project.files) == 5


def test_prompt_files_resolve_beside_the_route_then_from_the_root(starter):
    write(starter, "routes/sops/local.md", "local")
    write(starter, "routes/near.yaml", ROUTE.format(name="near", source="heartbeat", actor="inbox")
          + "    with:\n      prompt_file: sops/local.md\n")
    project = check_project(load_project(starter))
    assert lines(project) == []
    assert project.prompt_text(project.routes["near"]) == "local"
    assert project.prompt_path(project.routes["heartbeat-to-inbox"]) == (starter / "sops" / "triage.md").resolve()


def test_a_symlinked_prompt_leaving_the_project_is_refused(starter, tmp_path):
    outside = write(tmp_path, "outside.md", "secret")
    os.symlink(outside, starter / "sops" / "link.md")
    write(starter, "routes/near.yaml", ROUTE.format(name="near", source="heartbeat", actor="inbox")
          + "    with:\n      prompt_file: sops/link.md\n")
    assert lines(check_project(load_project(starter))) == [
        "routes/near.yaml:10:20: error: prompt_file 'sops/link.md' is outside the project directory"]


def test_loops_through_a_shared_platform_and_a_shared_file_are_warned_once_per_cycle(starter):
    write(starter, "connectors/loop.yaml", """\
apiVersion: orgloop/v1alpha1
kind: ConnectorGroup
sources:
  - id: a-in
    connector: file
    config: {path: out/a.jsonl}
  - id: b-in
    connector: file
    config: {path: out/b.jsonl}
actors:
  - id: a-out
    connector: file
    config: {path: out/b.jsonl}
  - id: b-out
    connector: file
    config: {path: ./out/a.jsonl}
  - id: elsewhere
    connector: file
    config: {path: out/c.jsonl}
""")
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text().replace("  - connectors/connectors.yaml\n",
                                             "  - connectors/connectors.yaml\n  - connectors/loop.yaml\n"))
    write(starter, "routes/loop.yaml", ROUTE.format(name="a-to-b", source="a-in", actor="a-out")
          + ROUTE.format(name="b-to-a", source="b-in", actor="b-out").split("routes:\n", 1)[1]
          + ROUTE.format(name="no-loop", source="a-in", actor="elsewhere").split("routes:\n", 1)[1])
    assert lines(check_project(load_project(starter))) == [
        "routes/loop.yaml:8:14: warning: possible event loop (agent ping-pong): route a-to-b -> actor a-out -> "
        "source b-in -> route b-to-a -> actor b-out -> source a-in -> route a-to-b (and 1 more route in loops "
        "through the same actors); add a filter (e.g. on "
        "provenance.author_type) or a dedup transform to break it"]


def test_a_route_not_listening_to_the_event_types_its_actor_causes_is_no_loop(starter):
    write(starter, "connectors/loop.yaml", "apiVersion: orgloop/v1alpha1\nkind: ConnectorGroup\n"
          "sources:\n  - id: in\n    connector: file\n    config: {path: out/x.jsonl}\n"
          "    emits: [message.received]\nactors:\n  - id: out\n    connector: file\n"
          "    config: {path: out/x.jsonl}\n")
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text().replace("  - connectors/connectors.yaml\n",
                                             "  - connectors/connectors.yaml\n  - connectors/loop.yaml\n"))
    write(starter, "routes/loop.yaml", ROUTE.format(name="r", source="in", actor="out")
          .replace("      source: in\n", "      source: in\n      events: [resource.changed]\n"))
    assert lines(check_project(load_project(starter))) == []


def test_one_error_per_value_even_for_unions_and_a_hint_for_a_misspelt_kind(starter):
    write(starter, "workspaces/w.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\nvariables:\n"
          "  A: [1]\n  B: {}\n  C: ok\n")
    write(starter, "routes/y.yaml", "apiVersion: orgloop/v1alpha1\nkind: RouteGrup\n")
    expected = "expected a valid string, a valid integer, a valid number or a valid boolean"
    assert lines(load_project(starter, workspace="w")) == [
        "routes/y.yaml:2:7: error: kind must be one of ConnectorGroup, RouteGroup, TransformGroup, LoggerGroup, "
        "got 'RouteGrup' (did you mean 'RouteGroup'?)",
        f"workspaces/w.yaml:4:6: error: variables.A: {expected}, got a list",
        f"workspaces/w.yaml:5:6: error: variables.B: {expected}, got an empty mapping",
    ]


def test_other_workspace_files_and_unlisted_files_are_checked_only_by_check_every_file(starter):
    write(starter, "workspaces/prod.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\n"
          "variabls: {}\nroutes:\n  heartbeat-to-inbx: {}\n")
    write(starter, "loggers/extra.yml", "apiVersion: orgloop/v1alpha1\nkind: LoggerGroup\n")
    project = check_project(load_project(starter, workspace="staging"))
    assert lines(project) == []                     # what plan/start load: the selected workspace only
    assert lines(check_every_file(project)) == [
        "loggers/extra.yml:1:1: warning: not listed under loggers: in orgloop.yaml, so this file is not loaded",
        "workspaces/prod.yaml:3:1: error: unknown key 'variabls' (did you mean 'variables'?)",
        "workspaces/prod.yaml:5:3: error: override for unknown route 'heartbeat-to-inbx' (did you mean "
        "'heartbeat-to-inbox'?)",
    ]


@pytest.mark.parametrize("checkpoint", [None, "  checkpoint: {store: file, dir: .orgloop/checkpoints}\n"])
def test_workspaces_never_share_checkpoints(starter, orgloop_env, checkpoint):
    from orgloop.checkpoint import resolve_checkpoint_store

    if checkpoint:
        path = starter / "orgloop.yaml"
        path.write_text(path.read_text().replace("  poll_interval: 1s\n", "  poll_interval: 1s\n" + checkpoint))
    dirs = []
    for workspace in ("default", "staging"):
        spec = to_runtime_spec(check_project(load_project(starter, workspace=workspace)))
        store = resolve_checkpoint_store(spec.checkpoint, module_path=spec.module_path, data_dir=spec.data_dir)
        dirs.append(store.dir)
        store.close()
    if checkpoint:
        assert dirs == [starter / ".orgloop" / "checkpoints" / w for w in ("default", "staging")]
    else:
        assert dirs == [workspace_data_dir("starter", starter, w) / "checkpoints" for w in ("default", "staging")]


@pytest.mark.usefixtures("installed_plugins_only")
def test_an_actor_posting_to_the_platform_a_source_reads_loops(starter):
    from orgloop import plugins

    plugins.register("sources", "chat", object)
    plugins.register("actors", "chat", object)
    write(starter, "connectors/chat.yaml", "apiVersion: orgloop/v1alpha1\nkind: ConnectorGroup\n"
          "sources:\n  - id: chat-in\n    connector: \"@orgloop/connector-chat\"\n"
          "actors:\n  - id: chat-bot\n    connector: chat\n")
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text().replace("  - connectors/connectors.yaml\n",
                                             "  - connectors/connectors.yaml\n  - connectors/chat.yaml\n"))
    write(starter, "routes/chat.yaml", ROUTE.format(name="answer", source="chat-in", actor="chat-bot"))
    assert lines(check_project(load_project(starter))) == [
        "routes/chat.yaml:8:14: warning: possible event loop (agent ping-pong): route answer -> actor chat-bot -> "
        "source chat-in -> route answer; add a filter (e.g. on provenance.author_type) or a dedup transform to "
        "break it"]


def test_max_retry_after_is_a_checked_duration_with_a_default_of_five_minutes(starter):
    route = starter / "routes" / "heartbeat.yaml"
    spec = to_runtime_spec(check_project(load_project(starter)))
    assert spec.routes[0].delivery.retry.max_retry_after == 300.0
    text = route.read_text()
    line = "          max_delay: 30s\n"
    assert line in text

    def with_cap(value: str) -> str:
        return text.replace(line, f"{line}          max_retry_after: {value}\n")

    route.write_text(with_cap("2m"))
    assert to_runtime_spec(check_project(load_project(starter))).routes[0].delivery.retry.max_retry_after == 120.0
    route.write_text(with_cap("1d 2h"))
    assert [line.split(": error: ", 1)[1] for line in lines(check_project(load_project(starter)))] == [
        "routes[0].then.delivery.retry.max_retry_after: invalid duration '1d 2h': expected a whole number and one "
        "of ms, s, m, h, d (e.g. '30s')"]
