"""Fixtures for CLI tests: a private ORGLOOP_HOME (nothing is written to ~/.orgloop) and a starter project."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orgloop.cli import main
from support.projects import installed_plugins_only, orgloop_env  # noqa: F401  (fixtures)


@pytest.fixture
def home(orgloop_env, monkeypatch) -> Path:
    """ORGLOOP_HOME of the test (data directories live under its data/)."""
    monkeypatch.delenv("ORGLOOP_DATA_DIR", raising=False)
    return orgloop_env


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
