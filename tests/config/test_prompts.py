"""``with.prompt_file``: front matter stripped, ``{{dot.path}}`` filled per event, everything else as written,
and the file must stay inside the project."""
from __future__ import annotations

import json
import os

import pytest

from orgloop.config.checks import check_project
from orgloop.config.loader import load_project
from orgloop.config.resolve import to_runtime_spec
from orgloop.dryrun import dry_run
from orgloop.errors import ConfigError
from orgloop.prompts import render
from orgloop.runtime import Runtime
from support.pipeline import wait_until
from support.projects import write

PROMPT = """---
title: triage
tags: [a, b]
---
Event {{ id }} from {{source}} (#{{payload.n}}).
Labels: {{payload.labels}} / missing: [{{payload.nope}}]
Left alone: {{ not a path }}, {% if x %}, ${HOME}, {{payload.n | upper}}
"""

PROJECT = """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: prompts
sources:
  - id: gen
    connector: generator
    config: {count: 3}
actors:
  - id: out
    connector: file
    config: {path: out/inbox.jsonl, include_prompt: true}
routes:
  - name: r
    when: {source: gen}
    then: {actor: out}
    with: {prompt_file: PROMPT_FILE}
"""


def make(root, prompt_file="./sops/triage.md"):
    write(root, "sops/triage.md", PROMPT)
    write(root, "orgloop.yaml", PROJECT.replace("PROMPT_FILE", prompt_file))
    return root


def test_render_fills_placeholders_and_leaves_everything_else():
    event = {"id": "evt_1", "source": "gh", "payload": {"n": 7, "labels": ["x", "ü"]}}
    text = render(PROMPT.split("---\n", 2)[2], event)
    assert text == ('Event evt_1 from gh (#7).\nLabels: ["x","ü"] / missing: []\n'
                    "Left alone: {{ not a path }}, {% if x %}, ${HOME}, {{payload.n | upper}}\n")


def test_the_runtime_delivers_the_prompt_rendered_for_each_event(tmp_path, orgloop_env):
    root = make(tmp_path / "p")
    project = check_project(load_project(root))
    assert project.diagnostics == []
    spec = to_runtime_spec(project)
    assert spec.routes[0].prompt.startswith("Event {{ id }}")            # front matter stripped at load
    spec.bus = "memory"
    out = root / "out" / "inbox.jsonl"
    runtime = Runtime(spec).start()
    try:
        assert wait_until(lambda: out.exists() and len(out.read_text().splitlines()) == 3)
    finally:
        runtime.stop()
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        event = record["event"]
        assert record["prompt"].startswith(f"Event {event['id']} from gen (#{event['payload']['n']}).\n")
        assert "title: triage" not in record["prompt"] and "{{ not a path }}" in record["prompt"]
    dry = dry_run(spec, records[0]["event"])
    assert dry[0].deliveries[0].prompt == records[0]["prompt"]             # orgloop test shows the same


@pytest.mark.parametrize("prompt_file", ["../outside.md", "/etc/hostname", "./sops/link.md"])
def test_a_prompt_file_outside_the_project_is_an_error(tmp_path, orgloop_env, prompt_file):
    root = make(tmp_path / "p", prompt_file)
    (tmp_path / "outside.md").write_text("secret instructions\n")
    os.symlink(tmp_path / "outside.md", root / "sops" / "link.md")       # a link that leads out
    project = check_project(load_project(root))
    assert [d.format(project.root) for d in project.errors] == [
        f"orgloop.yaml:17:25: error: prompt_file {prompt_file!r} is outside the project directory"]
    with pytest.raises(ConfigError, match="is outside the project directory"):
        project.prompt_text(project.routes["r"])                        # even without the checks
