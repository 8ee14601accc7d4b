"""Workspaces: isolated state and configuration for environments of one project.

A workspace named ``NAME`` is the file ``workspaces/NAME.yaml`` (kind ``Workspace``): ``variables`` feed
``${VAR}`` substitution, ``defaults``/``runtime`` and per-item overrides are deep-merged over the base
project. ``default`` always exists and needs no file. Which workspace a command uses: ``--workspace``,
else ``ORGLOOP_WORKSPACE``, else the selection stored in ``<project>/.orgloop/workspace`` (written by
``orgloop workspace select``), else ``default``. Each workspace has its own data directory, so WAL,
checkpoints, dead letters and applied state of two workspaces never mix.

A data directory also belongs to one project: the default one is keyed by ``metadata.name`` plus a short
hash of the project's absolute path (``<name>-<hash8>``), so two checkouts of one project never share
state. Each data directory records its owner in ``owner.json`` (name and path); a directory whose record
names another project is refused with both named (:func:`check_owner`).
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from orgloop.atomicfile import atomic_write
from orgloop.errors import ConfigError

__all__ = ["DEFAULT", "WorkspaceError", "DataDirError", "deep_merge", "workspace_data_dir", "project_key",
           "legacy_data_dir", "adopt_legacy_data_dir", "OWNER_FILE", "read_owner", "check_owner", "claim_data_dir", "selected_workspace",
           "check_name", "workspace_file", "list_workspaces", "select_workspace", "selection_file", "selection",
           "create_workspace", "check_removable"]

DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class WorkspaceError(ConfigError):
    """A workspace name is invalid, or the workspace does not exist."""


class DataDirError(ConfigError):
    """A data directory belongs to another project (its ``owner.json`` says so)."""


def check_name(name: str) -> str:
    """``name`` if it is a valid workspace name (letters, digits, ``_``, ``-``; max 64), else WorkspaceError."""
    if not _NAME.match(name):
        raise WorkspaceError(f"invalid workspace name {name!r}: use letters, digits, '_' and '-' "
                             "(starting with a letter or digit, at most 64)")
    return name


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: ``overlay`` over ``base``, merging nested mappings key by key; any other overlay value
    (lists included) replaces the base value. Neither input is modified or shared with the result."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _home() -> Path:
    return Path(os.environ.get("ORGLOOP_HOME") or Path.home() / ".orgloop").expanduser()


def _safe(project_name: str) -> str:
    return _UNSAFE.sub("_", project_name).lstrip(".") or "_"


def project_key(project_name: str, project_root: Path) -> str:
    """``<name>-<hash8>``: the project's name (unsafe characters as ``_``) and the first 8 hex digits of the
    SHA-256 of its absolute path. Two checkouts with one name get two keys."""
    import hashlib

    digest = hashlib.sha256(str(Path(project_root).absolute()).encode()).hexdigest()[:8]
    return f"{_safe(project_name)}-{digest}"


def workspace_data_dir(project_name: str, project_root: Path, workspace: str, override: Path | None = None) -> Path:
    """Where a workspace keeps its WAL, checkpoints, dead letters and applied state: ``override`` when
    given (used as is), else ``$ORGLOOP_HOME/data/<name>-<hash8>/<workspace>`` (see :func:`project_key`;
    ``ORGLOOP_HOME`` defaults to ``~/.orgloop``)."""
    if override is not None:
        return Path(override)
    return _home() / "data" / project_key(project_name, project_root) / check_name(workspace)


def legacy_data_dir(project_name: str, workspace: str) -> Path:
    """Where orgloop 0.1 kept a workspace's data: ``$ORGLOOP_HOME/data/<name>/<workspace>`` (name only)."""
    return _home() / "data" / _safe(project_name) / check_name(workspace)


def adopt_legacy_data_dir(project_name: str, project_root: Path, workspace: str) -> Path | None:
    """Move a workspace's data from the 0.1 layout (:func:`legacy_data_dir`) to its own directory, once:
    when the new directory does not exist yet, the old one does, records no other owner, and no runtime
    runs from it (its ``orgloop.pid`` names no live process). Returns the old path when it was moved.

    The old layout was shared by every project of that name, so the first project of that name that runs
    a command takes it over; a second checkout starts empty (``docs/operations.md`` says so)."""
    new = workspace_data_dir(project_name, project_root, workspace)
    old = legacy_data_dir(project_name, workspace)
    if new.exists() or not old.is_dir() or _pid_file_alive(old / "orgloop.pid"):
        return None
    try:
        check_owner(old, project_name, project_root)
    except DataDirError:
        return None
    new.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(old, new)
    claim_data_dir(new, project_name, project_root)
    try:
        old.parent.rmdir()                  # the old <name>/ folder, once its last workspace has moved
    except OSError:
        pass
    return old


def _pid_file_alive(path: Path) -> bool:
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


OWNER_FILE = "owner.json"


def read_owner(data_dir: Path) -> dict[str, Any] | None:
    """The owner recorded in ``data_dir`` (``{"name", "root"}``), or None when there is no readable record."""
    import json

    try:
        owner = json.loads((Path(data_dir) / OWNER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def check_owner(data_dir: Path, project_name: str, project_root: Path) -> None:
    """Raise :class:`DataDirError` when ``data_dir`` records another owner (another name or another path)."""
    owner = read_owner(data_dir)
    if owner is None:
        return
    root = str(Path(project_root).absolute())
    if owner.get("name") != project_name or owner.get("root") != root:
        raise DataDirError(
            f"data directory {data_dir} belongs to project {owner.get('name')!r} at {owner.get('root')} "
            f"(see its {OWNER_FILE}), not to project {project_name!r} at {root}: two projects must not share "
            "a data directory. Give this one its own runtime.data_dir, or delete that directory if its "
            "project is gone")


def claim_data_dir(data_dir: Path, project_name: str, project_root: Path) -> None:
    """Create ``data_dir`` (0700) for the project and record it as the owner; DataDirError if another owns it."""
    check_owner(data_dir, project_name, project_root)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if read_owner(data_dir) is None:      # fleet members sharing the directory may all get here at once
        import json

        record = {"name": project_name, "root": str(Path(project_root).absolute())}
        atomic_write(data_dir / OWNER_FILE, (json.dumps(record) + "\n").encode())


def selection_file(project_dir: Path) -> Path:
    """The file that stores the workspace selected with ``orgloop workspace select``."""
    return Path(project_dir) / ".orgloop" / "workspace"


def selected_workspace(project_dir: Path, override: str | None = None) -> str:
    """The workspace to use: ``override``, else ``$ORGLOOP_WORKSPACE``, else the stored selection, else
    ``default``. Raises WorkspaceError when the name found is invalid."""
    return selection(project_dir, override)[0]


def selection(project_dir: Path, override: str | None = None) -> tuple[str, str]:
    """The workspace to use and what chose it: ``--workspace``, ``ORGLOOP_WORKSPACE``, the selection
    file (its path relative to the project) or ``default``."""
    if override:
        return check_name(override), "--workspace"
    env = os.environ.get("ORGLOOP_WORKSPACE")
    if env:
        return check_name(env), "ORGLOOP_WORKSPACE"
    path = selection_file(project_dir)
    try:
        stored = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return check_name(stored), str(path.relative_to(project_dir))
    return DEFAULT, "default"


def workspace_file(project_dir: Path, name: str) -> Path:
    """``<project>/workspaces/<name>.yaml`` (it need not exist; ``default`` usually has none)."""
    return Path(project_dir) / "workspaces" / f"{check_name(name)}.yaml"


def list_workspaces(project_dir: Path) -> list[str]:
    """``default`` first, then every ``workspaces/*.yaml`` with a valid name, sorted."""
    found = {p.stem for p in (Path(project_dir) / "workspaces").glob("*.yaml") if p.is_file() and _NAME.match(p.stem)}
    found.discard(DEFAULT)
    return [DEFAULT, *sorted(found)]


def select_workspace(project_dir: Path, name: str) -> None:
    """Store ``name`` as the project's selected workspace; WorkspaceError when it does not exist."""
    if name not in list_workspaces(project_dir):
        check_name(name)
        raise WorkspaceError(f"workspace {name!r} does not exist (known: {', '.join(list_workspaces(project_dir))}; "
                             f"create it with `orgloop workspace new {name}`)")
    path = selection_file(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (name + "\n").encode())


_SKELETON = """\
apiVersion: orgloop/v1alpha1
kind: Workspace
metadata:
  name: {name}
  description: The {name} environment of this project.
# Used when this workspace is selected: `orgloop workspace select {name}`, `-w {name}` or
# ORGLOOP_WORKSPACE={name}. Everything below is optional and deep-merged over the base project.

# Variables for ${{VAR}} in every project file (the shell environment still wins; .env comes last).
variables: {{}}
#   API_URL: https://{name}.example.com

# Project defaults and runtime settings.
# defaults:
#   poll_interval: 1m
# runtime:
#   bus: filewal

# Overrides by id (sources, actors) or by name (routes, transforms, loggers).
# sources:
#   github-prs:
#     poll:
#       interval: 30s
# actors:
#   reviewer:
#     config:
#       channel: "#{name}"
# routes:
#   prs-to-reviewer:
#     then:
#       delivery:
#         max_rate: 10/s
"""


def create_workspace(project_dir: Path, name: str) -> Path:
    """Write a commented skeleton ``workspaces/<name>.yaml``; WorkspaceError if it exists or is ``default``."""
    if check_name(name) == DEFAULT:
        raise WorkspaceError("workspace 'default' always exists and has no file to create")
    path = workspace_file(project_dir, name)
    if path.exists():
        raise WorkspaceError(f"workspace {name!r} already exists ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "x", encoding="utf-8") as f:
        f.write(_SKELETON.format(name=name))
    return path


def check_removable(project_dir: Path, name: str, selected: str) -> Path:
    """The file to delete to remove workspace ``name``; WorkspaceError for ``default``, the ``selected``
    workspace and unknown names. (Deleting the file and the data directory is the caller's.)"""
    if check_name(name) == DEFAULT:
        raise WorkspaceError("workspace 'default' cannot be deleted")
    if name == selected:
        raise WorkspaceError(f"workspace {name!r} is selected; select another one first "
                             "(`orgloop workspace select default`)")
    path = workspace_file(project_dir, name)
    if not path.is_file():
        raise WorkspaceError(f"workspace {name!r} does not exist (no {path})")
    return path
