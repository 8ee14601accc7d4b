"""The newcomer's path stays true: the README's test command is CI's, the plug-ins it lists exist, the
docs point only at files of the repository, and `orgloop demo` leaves nothing behind."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").glob("*.md"))]


def test_the_readme_test_command_is_exactly_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# --- the README's test command, verbatim ---") + 1]
    assert f"```\n{command}\n```" in README.read_text()


def _readme_plugins() -> dict[str, set[str]]:
    """The built-in table of the README: kind -> the backticked plug-in names in its row."""
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\| (sources|actors|transforms|loggers|buses) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = set(re.findall(r"`([a-z0-9-]+)`", m.group(2)))
    return rows


def test_the_readme_lists_only_plugins_that_exist():
    rows = _readme_plugins()
    assert set(rows) == {"sources", "actors", "transforms", "loggers", "buses"}
    for kind, names in rows.items():
        installed = {ep.name for ep in entry_points(group=f"orgloop.{kind}")}
        assert names <= installed, (kind, names - installed)


def test_the_readme_lists_every_builtin_plugin():
    rows = _readme_plugins()
    for kind, names in rows.items():
        builtin = {ep.name for ep in entry_points(group=f"orgloop.{kind}") if ep.value.startswith("orgloop.")}
        assert builtin <= names, (kind, builtin - names)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_point_only_at_files_of_the_repository(doc):
    text = doc.read_text()
    assert "/work/" not in text
    for target in re.findall(r"\]\(([^)#]+)", text):                    # markdown links
        assert not target.startswith(("http://", "https://", "/")), target
        assert (doc.parent / target).exists(), target
    for path in re.findall(r"`((?:docs|bench|examples|tests)/[A-Za-z0-9_./-]+\.(?:md|py|yaml))`", text):
        assert (REPO / path).exists(), path


def test_demo_removes_its_temporary_directory(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "orgloop", "demo", "--seconds", "0.3", "--threads", "1"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed " + str(tmp_path) in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_readme_segment_size_setting_is_valid(tmp_path, cli):
    block = re.search(r"```yaml\n(runtime:\n.*?)```", README.read_text(), re.S)
    assert block, "the README shows the runtime.bus_options block"
    project = tmp_path / "p"
    assert cli("init", project).exit_code == 0
    (project / "orgloop.yaml").write_text((project / "orgloop.yaml").read_text() + block.group(1))
    result = cli("validate", "-p", project)
    assert result.exit_code == 0, result.output
