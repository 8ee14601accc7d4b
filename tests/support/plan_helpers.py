"""Helpers for tests on project directories."""
from __future__ import annotations

import json
from pathlib import Path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def record_applied(project: Path, home: Path, workspace: str = "default") -> Path:
    """Record the project's current desired state as applied (at the epoch, for stable output)."""
    from orgloop.config.loader import load_project
    from orgloop.plan import desired_state, write_applied

    p = load_project(project, workspace=workspace)
    write_applied(p.data_dir, desired_state(p), project=p.name, workspace=workspace)
    path = p.data_dir / "applied-state.json"
    record = json.loads(path.read_text())
    record["applied_at"] = 0
    path.write_text(json.dumps(record))
    return p.data_dir
