"""Fixtures for CLI tests: a private ORGLOOP_HOME (nothing is written to ~/.orgloop) and a starter project."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orgloop.cli import main


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("ORGLOOP_HOME", str(path))
    monkeypatch.delenv("ORGLOOP_WORKSPACE", raising=False)
    monkeypatch.delenv("ORGLOOP_DATA_DIR", raising=False)
    return path


@pytest.fixture
def cli(home):
    """``cli(*args)`` runs orgloop in-process and returns the click Result (stdout and stderr apart)."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def demo(tmp_path, cli) -> Path:
    """A project made by ``orgloop init`` (named "demo")."""
    path = tmp_path / "demo"
    result = cli("init", path)
    assert result.exit_code == 0, result.output
    return path
