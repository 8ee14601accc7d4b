"""The selector in orgloop.queues: which twin is live, and the two environment switches."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import orgloop.queues as queues
from orgloop.cli import main


def _implementation_in_child(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORGLOOP_")}
    out = subprocess.run([sys.executable, "-c", "import orgloop.queues as q; print(q.implementation())"],
                         env={**clean, **env}, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_live_class_is_the_selected_twin() -> None:
    assert queues.BoundedQueue is queues.twins.active.BoundedQueue
    assert queues.implementation() == queues.twins.name


@pytest.mark.skipif(os.environ.get("ORGLOOP_REQUIRE_COMPILED", "") in ("", "0"),
                    reason="only meaningful where the build is required (CI sets ORGLOOP_REQUIRE_COMPILED=1)")
def test_compiled_queue_is_really_loaded() -> None:
    assert queues.implementation() == "compiled"
    assert queues.twins.compiled is not None
    assert str(queues.twins.compiled.__file__).endswith((".so", ".pyd"))
    assert queues.BoundedQueue is queues.twins.compiled.BoundedQueue


def test_purepython_switch_selects_the_pure_twin() -> None:
    assert _implementation_in_child(ORGLOOP_PUREPYTHON="1") == "pure"


def test_version_command_names_the_queue_backend() -> None:
    result = CliRunner().invoke(main, ["version"])
    assert result.exit_code == 0
    assert f"queues={queues.implementation()}" in result.output


def test_stub_matches_the_compiled_module(tmp_path) -> None:
    if queues.twins.compiled is None:
        pytest.skip("compiled queue not built")
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "orgloop.queues._queue", "--concise"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)  # no project config
    assert out.returncode == 0, out.stdout + out.stderr
