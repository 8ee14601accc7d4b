"""Project fixtures for config and CLI tests: a clean environment and copies of the example projects."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import orgloop
from orgloop import plugins

STARTER = Path(orgloop.__file__).parent / "templates" / "starter"
BROKEN = Path(__file__).parent.parent / "config" / "projects" / "broken"
_PROJECT_VARIABLES = ("ORGLOOP_WORKSPACE", "GITHUB_TOKEN", "INBOX_PATH", "PROJECT_NAME", "API_TOKEN")


@pytest.fixture
def orgloop_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No workspace or project variable from the caller's shell; ORGLOOP_HOME in a temp dir (returned)."""
    for name in _PROJECT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "orgloop-home"
    monkeypatch.setenv("ORGLOOP_HOME", str(home))
    return home


@pytest.fixture
def installed_plugins_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide plugins other tests registered in-process, so messages listing the installed plugins are stable."""
    monkeypatch.setattr(plugins, "_registered", {kind: {} for kind in plugins.KINDS})


def copy_project(source: Path, dest: Path) -> Path:
    """A writable copy of an example project at ``dest``."""
    shutil.copytree(source, dest)
    return dest


def write(root: Path, relative: str, text: str) -> Path:
    """Write ``text`` to ``root/relative`` (parents created) and return the path."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
