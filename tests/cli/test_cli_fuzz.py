"""Hostile and odd project files: every command gives a ``file:line:col`` error (or works), never a
traceback, a hang or unbounded memory. The memory-bounded runs are subprocesses under RLIMIT_DATA."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from orgloop.config.yamlfile import MAX_DEPTH
from support.projects import STARTER, copy_project

ROUTE = "routes/heartbeat.yaml"
EVENT = '{"source": "heartbeat", "type": "resource.changed", "provenance": {"platform": "test"}, "payload": {}}'


def _bomb(levels: int = 9) -> str:
    """A billion-laughs alias bomb as a mapping (9 levels of 9: 387 million leaves once expanded)."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def _route_with_config(config_yaml: str) -> str:
    """The starter route with ``then.config`` replaced by ``config_yaml`` (indented under it)."""
    body = "\n".join("        " + line for line in config_yaml.splitlines())
    text = (STARTER / ROUTE).read_text()
    return text.replace("      actor: inbox\n", f"      actor: inbox\n      config:\n{body}\n")


def _deep(n: int) -> str:
    return "deep: " + "[" * n + "]" * n


CASES: dict[str, tuple[bytes, str | None]] = {
    # name: (the route file's bytes, a fragment of the expected diagnostic or None when the file is valid)
    "tabs": (b"apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n\t- name: x\n", "routes/heartbeat.yaml:4:1: error: YAML syntax error"),
    "duplicate-keys": ((STARTER / ROUTE).read_bytes().replace(b"    when:\n", b"    when:\n      source: heartbeat\n"),
                       "duplicate key 'source'"),
    "anchors-and-merges": (_route_with_config("base: &base {channel: ops, retries: 2}\n"
                                              "copy: *base\nmerged:\n  <<: *base\n  channel: dev").encode(), None),
    "10MB": ((STARTER / ROUTE).read_bytes() + b"# " + b"x" * (10 * 1024 * 1024) + b"\n", "error: file too large"),
    "binary": (bytes(range(256)) * 64, "routes/heartbeat.yaml:1:1: error: cannot read file"),
    "bad-utf8": (b"apiVersion: orgloop/v1alpha1\nkind: \xff\xfe RouteGroup\n", "routes/heartbeat.yaml:1:1: error: cannot read file"),
    "deep-nesting": (_route_with_config(_deep(100_000)).encode(), "error: YAML syntax error"),
    "deep-but-allowed-by-libyaml": (_route_with_config(_deep(MAX_DEPTH + 10)).encode(),
                                    f"nested more than {MAX_DEPTH} levels deep"),
    "billion-laughs-in-then.config": (_route_with_config(_bomb()).encode(), "alias bombs"),
}


@pytest.fixture
def fuzzed(tmp_path, orgloop_env):
    def make(name: str) -> Path:
        project = copy_project(STARTER, tmp_path / name)
        (project / ROUTE).write_bytes(CASES[name][0])
        (project / "event.json").write_text(EVENT)
        return project
    return make


@pytest.mark.parametrize("name", CASES)
def test_every_command_reports_a_position_or_works(name, fuzzed, cli):
    project = fuzzed(name)
    expected = CASES[name][1]
    commands = [["validate"], ["plan"], ["routes"], ["inspect", "route", "heartbeat-to-inbox"],
                ["test", str(project / "event.json")]]
    if expected is not None:                 # a valid project would really start: that is tested elsewhere
        commands.append(["start", "--for", "1s"])
    for args in commands:
        result = cli(*args, "-p", project)
        out = result.stdout + result.stderr
        assert "Traceback" not in out, (args, out[-2000:])
        if expected is None:
            assert result.exit_code in (0, 2), (args, out[-2000:])     # plan: 2 = changes
        else:
            assert result.exit_code == 1, (args, result.exit_code, out[-2000:])
            assert expected in out, (args, out[-2000:])


def _capped(argv: list[str], env: dict[str, str], limit: int = 768 << 20) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    return subprocess.run([sys.executable, "-m", "orgloop", *argv], capture_output=True, text=True, env=env,
                          preexec_fn=cap, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["billion-laughs-in-then.config", "deep-nesting", "10MB"])
def test_memory_stays_bounded_in_a_real_process(name, fuzzed, orgloop_env):
    project = fuzzed(name)
    env = {**os.environ, "ORGLOOP_HOME": str(orgloop_env)}
    for args in (["plan"], ["inspect", "route", "heartbeat-to-inbox"]):
        r = _capped([*args, "-p", str(project)], env)
        assert r.returncode == 1 and CASES[name][1] in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
