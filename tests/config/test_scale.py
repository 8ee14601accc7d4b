"""The bench's project generator writes valid projects (plan timing reuses it), and loading leaves the
garbage collector as it found it."""
from __future__ import annotations

import gc
import importlib.util
from pathlib import Path

import pytest

from orgloop.config.checks import check_project
from orgloop.config.loader import load_project

_GEN = Path(__file__).parents[2] / "bench" / "gen_project.py"


def _write_project():
    spec = importlib.util.spec_from_file_location("gen_project", _GEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_project


@pytest.mark.usefixtures("orgloop_env")
def test_generated_projects_are_valid_with_the_requested_sizes(tmp_path):
    project_file = _write_project()(tmp_path / "p", sources=230, actors=40, routes=333, route_files=7)
    project = check_project(load_project(project_file))
    assert project.errors == []
    assert (len(project.sources), len(project.actors), len(project.routes)) == (230, 40, 333)
    assert len(list((tmp_path / "p" / "routes").glob("*.yaml"))) == 7
    loops = [d for d in project.warnings if "possible event loop" in d.message]
    assert len(loops) == len(project.warnings) == 5


@pytest.mark.usefixtures("orgloop_env")
@pytest.mark.parametrize("enabled", [True, False])
def test_loading_restores_the_collector_state(tmp_path, enabled):
    project_file = _write_project()(tmp_path / "p", sources=5, actors=5, routes=5, route_files=1)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        check_project(load_project(project_file))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
