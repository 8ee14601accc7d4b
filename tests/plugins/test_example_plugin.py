"""The third-party example package under examples/ is pip-installed into a temporary directory, found
through its entry points exactly like the built-ins, and run through a project by real CLI processes."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.projects import write

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "orgloop-plugin-example"
KEY = "memo-signing-key-0123"

PROJECT = """\
apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: example-plugin
sources:
  - id: gen
    connector: generator
    config: {count: 3}
    poll: {interval: 100ms}
actors:
  - id: memo
    connector: "@orgloop/connector-memo"
    config:
      path: out/memo.txt
      signing_key: ${MEMO_KEY}
transforms:
  - name: stamp
    type: package
    package: "@orgloop/transform-stamp"
    config: {value: example-plugin}
routes:
  - name: r
    when: {source: gen}
    transforms: [{ref: stamp}]
    then: {actor: memo}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                    "--target", str(target), str(PACKAGE)], check=True, timeout=300,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return target


@pytest.fixture
def orgloop(site, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "ORGLOOP_HOME": str(tmp_path / "home"), "NO_COLOR": "1"}
    env.pop("MEMO_KEY", None)

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orgloop", *args], env=env, text=True, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return run


def test_orgloop_plugins_lists_the_installed_package(orgloop):
    r = orgloop("plugins", "-o", "json")
    assert r.returncode == 0, r.stderr
    rows = {(p["kind"], p["name"]): p for p in json.loads(r.stdout)["plugins"]}
    assert rows[("transform", "stamp")] == {
        "kind": "transform", "name": "stamp", "target": "orgloop_plugin_example:StampTransform",
        "distribution": "orgloop-plugin-example", "version": "0.1.0", "config_model": "StampConfig"}
    assert rows[("actor", "memo")]["config_model"] == "MemoConfig"
    assert rows[("transform", "dedup")]["distribution"] == "orgloop"        # built-ins, the same way
    human = orgloop("plugins", "--kind", "actor").stdout
    assert "memo\torgloop-plugin-example\t0.1.0\tMemoConfig" in human


def test_a_project_runs_through_the_installed_plugins(orgloop, tmp_path):
    root = tmp_path / "project"
    write(root, "orgloop.yaml", PROJECT)
    write(root, ".env", f"MEMO_KEY={KEY}\n")
    r = orgloop("validate", "-p", str(root))
    assert r.returncode == 0, r.stdout + r.stderr
    r = orgloop("start", "-p", str(root), "--for", "3s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert KEY not in r.stdout + r.stderr                                  # the plan it printed is masked
    lines = (root / "out" / "memo.txt").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        prefix, event_id, digest, stamp = line.split(" ")
        assert (prefix, stamp) == ("memo", "example-plugin")
        assert digest == hmac.new(KEY.encode(), event_id.encode(), hashlib.sha256).hexdigest()
    r = orgloop("inspect", "-p", str(root), "actor", "memo")
    assert "signing_key: '***'" in r.stdout and KEY not in r.stdout


def test_validate_checks_the_third_party_config_model(orgloop, tmp_path):
    root = tmp_path / "project"
    write(root, "orgloop.yaml", PROJECT.replace("config: {value: example-plugin}", "config: {valu: x}"))
    write(root, ".env", f"MEMO_KEY={KEY}\n")
    r = orgloop("validate", "-p", str(root))
    assert r.returncode == 1
    assert "orgloop.yaml:20:13: error: missing required key 'value' in transforms[0].config" in r.stdout
    assert "orgloop.yaml:20:14: error: unknown key 'valu' in transforms[0].config (did you mean 'value'?)" \
        in r.stdout
