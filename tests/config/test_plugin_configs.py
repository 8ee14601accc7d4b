"""Every plugin's ``config`` (and ``runtime.bus_options``) is checked against the plugin's model at
file:line:col, start reports a clear error instead of a TypeError, and ``orgloop schema`` carries the models."""
from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner

from orgloop import plugins
from orgloop.bus import open_bus
from orgloop.cli import main
from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
from orgloop.config.resolve import to_runtime_spec
from orgloop.config.schema import json_schema
from orgloop.config.yamlfile import load_yaml
from orgloop.plan import Masker, desired_state
from orgloop.runtime import Runtime
from support.projects import write


PROJECT = """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: configs
connectors:
  - connectors/connectors.yaml
transforms:
  - transforms/transforms.yaml
"""
CONNECTORS = """\
apiVersion: orgloop/v1alpha1
kind: ConnectorGroup
sources:
  - id: heartbeat
    connector: generator
    config:
      rate: 5
actors:
  - id: inbox
    connector: file
    config:
      path: out/inbox.jsonl
      include_prompt: true
"""
TRANSFORMS = """\
apiVersion: orgloop/v1alpha1
kind: TransformGroup
transforms:
  - name: only-changes
    type: package
    package: "@orgloop/transform-filter"
    config:
      match:
        type: resource.changed
  - name: once
    type: package
    package: "@orgloop/transform-dedup"
    config:
      key: [source, id]
      window: 10m
"""
ROUTES = """\
apiVersion: orgloop/v1alpha1
kind: RouteGroup
routes:
  - name: heartbeat-to-inbox
    when: {source: heartbeat}
    transforms: [{ref: only-changes}, {ref: once}]
    then: {actor: inbox}
"""


@pytest.fixture
def starter(tmp_path, orgloop_env):
    """A small project of our own (positions below refer to these texts)."""
    root = tmp_path / "configs"
    for name, text in (("orgloop.yaml", PROJECT), ("connectors/connectors.yaml", CONNECTORS),
                       ("transforms/transforms.yaml", TRANSFORMS), ("routes/r.yaml", ROUTES)):
        write(root, name, text)
    return root


def problems(root):
    project = check_project(load_project(root))
    return [d.format(project.root) for d in project.sorted_diagnostics()]


def add_runtime(root, text):
    path = root / "orgloop.yaml"
    path.write_text(path.read_text() + "runtime:\n" + text)


def edit(path, old, new):
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_misspelt_and_malformed_settings_are_errors_at_their_position_with_did_you_mean(starter):
    edit(starter / "transforms" / "transforms.yaml", "      window: 10m\n", "      windw: 10x\n")
    edit(starter / "connectors" / "connectors.yaml", "      include_prompt: true\n", "      include_promt: true\n")
    add_runtime(starter, "  bus_options:\n    synk: always\n")
    assert problems(starter) == [
        "connectors/connectors.yaml:13:7: error: unknown key 'include_promt' in actors[0].config "
        "(did you mean 'include_prompt'?)",
        "orgloop.yaml:11:5: error: unknown key 'synk' in runtime.bus_options (did you mean 'sync'?)",
        "transforms/transforms.yaml:15:7: error: unknown key 'windw' in transforms[1].config "
        "(did you mean 'window'?)",
    ]
    edit(starter / "transforms" / "transforms.yaml", "      windw: 10x\n", "      window: 10x\n")
    assert "transforms/transforms.yaml:15:15: error: transforms[1].config.window: invalid duration '10x': " \
           "expected a whole number and one of ms, s, m, h, d (e.g. '30s')" in problems(starter)


def test_bus_name_and_values_are_checked(starter):
    add_runtime(starter, "  bus: filewall\n")
    assert problems(starter) == ["orgloop.yaml:10:8: error: no bus plugin 'filewall' is installed "
                                 "(did you mean 'filewal'?) (installed: filewal, kafka, memory, nats, redis)"]
    edit(starter / "orgloop.yaml", "  bus: filewall\n", "  bus_options:\n    sync: sometimes\n    segment_size: 1XB\n")
    found = problems(starter)
    assert found[0].startswith("orgloop.yaml:11:11: error: runtime.bus_options.sync: expected 'always', "
                               "'interval' or 'none', got 'sometimes'")
    assert found[1].startswith("orgloop.yaml:12:19: error: runtime.bus_options.segment_size: invalid size '1XB'")


def test_a_secret_setting_is_never_quoted_in_a_message(starter):
    edit(starter / "connectors" / "connectors.yaml", "      include_prompt: true\n",
         "      include_prompt: true\n  - id: notify\n    connector: command\n    config:\n"
         "      command: [notify]\n      env: {TOKEN: [hunter2-in-a-list]}\n      timeout: [7]\n")
    found = problems(starter)
    assert any(p.startswith("connectors/connectors.yaml:18:20: error: actors[1].config.env.TOKEN: "
                            "expected a valid string") for p in found), found
    assert "hunter2" not in "\n".join(found)
    assert any("actors[1].config.timeout: expected a valid number, got a list" in p for p in found)   # shown


def test_a_missing_plugin_names_the_distribution_that_provides_it(starter):
    edit(starter / "transforms" / "transforms.yaml", '"@orgloop/transform-dedup"', '"@orgloop/transform-stamp"')
    [problem] = problems(starter)
    assert "no transform plugin '@orgloop/transform-stamp' is installed (provided by the Python distribution " \
           "'orgloop-plugin-example': pip install orgloop-plugin-example)" in problem


def test_start_reports_a_bad_config_clearly_instead_of_a_type_error(starter, tmp_path):
    project = load_project(starter)
    spec = to_runtime_spec(project)
    spec.loggers, spec.bus = [], "memory"        # start stops at the first plugin it cannot build
    spec.actors[0].config = {**spec.actors[0].config, "include_promt": True, "token": "s3cret"}
    with pytest.raises(plugins.PluginConfigError) as caught:
        Runtime(spec).start()
    assert str(caught.value).startswith("actor 'inbox' (file): invalid config: include_promt: Extra inputs")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(plugins.PluginConfigError, match="bus 'filewal': invalid bus_options: synk: Extra"):
        open_bus("filewal", path=tmp_path / "wal", synk="always")
    bus = open_bus("filewal", path=tmp_path / "wal", max_segment_age="1h", segment_size="64KiB")
    try:
        assert bus.wal.max_segment_age == 3600.0 and bus.wal.segment_size == 65536   # parsed by the model
    finally:
        bus.close()


def test_schema_carries_each_plugins_model(starter):
    schema = json_schema()
    assert "plugin.transforms.dedup" in schema["$defs"] and "plugin.buses.filewal" in schema["$defs"]
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted(starter.rglob("*.yaml")):
        errors = list(validator.iter_errors(load_yaml(path).data))
        assert not errors, (path, [e.message for e in errors])
    group = load_yaml(starter / "transforms" / "transforms.yaml").data
    group["transforms"][1]["config"]["windw"] = "10m"
    assert "'windw' was unexpected" in jsonschema.exceptions.best_match(validator.iter_errors(group)).message
    project = load_yaml(starter / "orgloop.yaml").data
    project["runtime"] = {"bus_options": {"synk": "always"}}       # the default bus, filewal
    errors = jsonschema.Draft202012Validator(json_schema("Project")).iter_errors(project)
    assert "'synk' was unexpected" in jsonschema.exceptions.best_match(errors).message
    text = CliRunner().invoke(main, ["schema", "--kind", "LoggerGroup"]).stdout
    assert "plugin.loggers.file" in json.loads(text)["$defs"]


def test_inline_items_load_like_group_files(tmp_path, orgloop_env):
    root = tmp_path / "inline"
    write(root, "sops/p.md", "---\ntitle: x\n---\nEvent {{id}}\n")
    write(root, "orgloop.yaml", """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: inline
sources:
  - id: gen
    connector: "@orgloop/connector-generator"
    config: {count: 3}
actors:
  - id: out
    connector: "@orgloop/connector-file"
    config: {path: out.jsonl, include_prompt: true}
transforms:
  - name: once
    type: package
    package: "@orgloop/transform-dedup"
    config: {window: 10m}
routes:
  - name: r
    when: {source: gen}
    transforms: [{ref: once}]
    then: {actor: out}
    with: {prompt_file: ./sops/p.md}
loggers:
  - name: console-log
    type: "@orgloop/logger-console"
    config: {level: info, color: true}
  - name: file-log
    type: "@orgloop/logger-file"
    config:
      path: logs/x.log
      format: jsonl
      rotation: {max_size: 50MB, max_age: 7d}
""")
    write(root, "workspaces/staging.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\n"
                                           "sources:\n  gen:\n    config: {count: 9}\n")
    project = check_project(load_project(root))
    assert project.diagnostics == []
    assert {k: sorted(v) for k, v in project.definitions.items()} == {
        "sources": ["gen"], "actors": ["out"], "routes": ["r"], "transforms": ["once"],
        "loggers": ["console-log", "file-log"]}
    assert project.routes["r"].position("then", "actor") == (22, 19)
    spec = to_runtime_spec(project)
    assert spec.routes[0].prompt == "Event {{id}}\n" and spec.loggers[1].type == "file"
    staged = load_project(root, workspace="staging")
    assert staged.sources["gen"].model.config == {"count": 9}               # overrides reach inline items
    edit(root / "orgloop.yaml", "  - name: console-log\n", "  - nam: console-log\n")
    edit(root / "orgloop.yaml", "    config: {count: 3}\n", "    config: {cont: 3}\n")
    assert problems(root) == [
        "orgloop.yaml:8:14: error: unknown key 'cont' in sources[0].config (did you mean 'count'?)",
        "orgloop.yaml:25:5: error: missing required key 'name' in loggers[0]",
        "orgloop.yaml:25:5: error: unknown key 'nam' in loggers[0] (did you mean 'name'?)",
    ]


def test_inline_items_and_group_files_share_one_namespace(starter):
    path = starter / "orgloop.yaml"
    path.write_text(path.read_text() + "actors:\n  - id: inbox\n    connector: file\n    config: {path: x.jsonl}\n")
    found = problems(starter)
    assert found == ["connectors/connectors.yaml:9:9: error: duplicate actor 'inbox': already defined "
                     "at orgloop.yaml:10:9"]


def test_plan_masks_secret_fields_by_model_not_by_name(tmp_path, orgloop_env):
    root = tmp_path / "secrets"
    write(root, "orgloop.yaml", """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: secrets
sources:
  - id: gh
    connector: github
    config: {repo: a/b, token: ghp_literal_0123456789}
actors:
  - id: agent
    connector: openclaw
    config: {auth_token_env: oc_literal_token_42, agent_id: sup}
  - id: run
    connector: command
    config: {command: [run], env: {KEY_PATH: /etc/literal-env-value}}
transforms:
  - name: once
    type: package
    package: dedup
    config: {key: [source, payload.key_id]}
routes:
  - name: r
    when: {source: gh}
    transforms: [{ref: once}]
    then: {actor: agent}
""")
    project = check_project(load_project(root))
    assert project.errors == []
    state = desired_state(project)
    text = json.dumps(state)
    for secret in ("ghp_literal_0123456789", "oc_literal_token_42", "/etc/literal-env-value"):
        assert secret not in text
    assert Masker.display(state)["sources"]["gh"]["config"] == {"repo": "a/b", "token": "***"}
    assert state["actors"]["agent"]["config"]["agent_id"] == "sup"
    assert state["transforms"]["once"]["config"]["key"] == ["source", "payload.key_id"]   # "key" is no secret


def test_a_bad_setting_from_a_workspace_override_is_reported_in_the_workspace_file(starter):
    write(starter, "workspaces/staging.yaml", "apiVersion: orgloop/v1alpha1\nkind: Workspace\ntransforms:\n"
                                              "  once:\n    config:\n      windw: 1m\n")
    project = check_project(load_project(starter, workspace="staging"))
    assert [d.format(project.root) for d in project.sorted_diagnostics()] == [
        "workspaces/staging.yaml:6:7: error: unknown key 'windw' in transforms[1].config (did you mean 'window'?)"]
    assert problems(starter) == []                                      # the default workspace is fine
