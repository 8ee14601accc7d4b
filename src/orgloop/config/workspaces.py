"""TEMPORARY stand-in until the workspaces branch lands."""
from __future__ import annotations
import os
from pathlib import Path
from typing import Any


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in overlay.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def workspace_data_dir(project_name: str, workspace: str, override: Path | None = None) -> Path:
    if override is not None:
        return Path(override)
    home = Path(os.environ.get("ORGLOOP_HOME", Path.home() / ".orgloop"))
    return home / "data" / project_name / workspace


def selected_workspace(project_dir: Path, override: str | None = None) -> str:
    return override or os.environ.get("ORGLOOP_WORKSPACE") or "default"
