"""Cross-file checks not covered by the broken project's golden output."""
from __future__ import annotations

import pytest

from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
from support.projects import STARTER, copy_project, write

TRANSFORMS = """\
apiVersion: orgloop/v1alpha1
kind: TransformGroup
transforms:
  - name: s
    type: script
    script: {script}
"""


@pytest.fixture
def starter(tmp_path, orgloop_env):
    return copy_project(STARTER, tmp_path / "starter")


def problems(root):
    project = check_project(load_project(root))
    return [d.format(project.root) for d in project.sorted_diagnostics()]


def with_transforms(root, text):
    path = write(root, "transforms/more.yaml", text)
    project_file = root / "orgloop.yaml"
    project_file.write_text(project_file.read_text().replace(
        "  - transforms/transforms.yaml\n", "  - transforms/transforms.yaml\n  - transforms/more.yaml\n"))
    return path


def test_scripts_must_exist_and_be_executable(starter):
    with_transforms(starter, TRANSFORMS.format(script="./enrich.sh"))
    assert problems(starter) == ["transforms/more.yaml:6:13: error: script './enrich.sh' not found "
                                 "(resolved to transforms/enrich.sh)"]
    script = write(starter, "transforms/enrich.sh", "#!/bin/sh\ncat\n")
    assert problems(starter) == ["transforms/more.yaml:6:13: error: script './enrich.sh' is not executable "
                                 "(chmod +x it)"]
    script.chmod(0o755)
    assert problems(starter) == []


@pytest.mark.usefixtures("installed_plugins_only")
def test_plugins_are_found_by_package_name_or_bare_name(starter):
    path = starter / "connectors" / "connectors.yaml"
    path.write_text(path.read_text().replace("connector: generator", "connector: \"@orgloop/connector-generator\"")
                    .replace("connector: file", "connector: fil"))
    assert problems(starter) == ["connectors/connectors.yaml:16:16: error: no actor plugin 'fil' is installed "
                                 "(did you mean 'file'?) (installed: command, file, http, openclaw, webhook)"]


def test_route_source_patterns(starter):
    path = starter / "routes" / "heartbeat.yaml"
    original = path.read_text()
    path.write_text(original.replace("source: heartbeat", "source: heart*"))
    assert problems(starter) == []
    path.write_text(original.replace("source: heartbeat", "source: \"*\""))
    assert problems(starter) == []
    path.write_text(original.replace("source: heartbeat", "source: cold-?"))
    assert problems(starter) == ["routes/heartbeat.yaml:7:15: warning: source pattern 'cold-?' matches no source"]


def test_event_types_declared_by_a_source_are_known(starter):
    path = starter / "connectors" / "connectors.yaml"
    path.write_text(path.read_text().replace("emits: [resource.changed]", "emits: [resource.changed, pr.opened]"))
    route = starter / "routes" / "heartbeat.yaml"
    route.write_text(route.read_text().replace("events: [resource.changed]", "events: [pr.opened, pr.opend]"))
    assert problems(starter) == [
        "routes/heartbeat.yaml:8:27: error: unknown event type 'pr.opend' (did you mean 'pr.opened'?); known types: "
        "actor.stopped, message.received, pr.opened, resource.changed"]


def test_a_name_misspelt_by_many_routes_is_looked_up_once(starter, monkeypatch):
    from orgloop.config import checks

    calls = []
    real = checks.did_you_mean
    monkeypatch.setattr(checks, "did_you_mean", lambda word, names: calls.append(word) or real(word, names))
    routes = "".join(f"  - name: r{i}\n    when: {{source: hartbeat}}\n    then: {{actor: inbox}}\n" for i in range(5))
    write(starter, "routes/many.yaml", f"apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n{routes}")
    found = problems(starter)
    assert len(found) == 5 and all("unknown source 'hartbeat' (did you mean 'heartbeat'?)" in p for p in found)
    assert calls == ["hartbeat"]
