"""Load a project directory (``orgloop.yaml`` and the files it names) into checked definitions.

Loading never stops at the first problem: every file is read and validated, problems are collected as
:class:`~orgloop.config.diagnostics.Diagnostic` objects, and whatever is valid is kept so that the
cross-file checks (:mod:`orgloop.config.checks`) can run too. Only a project that cannot be read at all
(no ``orgloop.yaml``) raises :class:`ProjectNotFound`.

Order of work: the selected workspace file (its ``variables`` feed substitution), ``orgloop.yaml``, the
connector/transform/logger files it lists (paths or globs, relative to it), the route files discovered
in ``routes/*.yaml|yml``; each file is parsed, ``${VAR}``-substituted, merged with the workspace's
overrides for its items, and validated against its schema, item by item.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import BaseModel, ValidationError

from orgloop.config import models as m
from orgloop.config.diagnostics import Diagnostic, Severity, from_validation_error
from orgloop.config.variables import VariableError, read_dotenv, substitute
from orgloop.config.workspaces import deep_merge, workspace_data_dir
from orgloop.config.yamlfile import YamlDocument, YamlSyntaxError, load_yaml
from orgloop.errors import ConfigError

__all__ = ["Project", "Definition", "ProjectNotFound", "load_project", "find_project", "KINDS"]

KINDS = ("sources", "actors", "routes", "transforms", "loggers")
_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "sources": m.Source, "actors": m.Actor, "routes": m.Route, "transforms": m.Transform, "loggers": m.Logger}
_GROUP_ITEMS = {"ConnectorGroup": ("sources", "actors"), "RouteGroup": ("routes",),
                "TransformGroup": ("transforms",), "LoggerGroup": ("loggers",)}
_SINGULAR = {"sources": "source", "actors": "actor", "routes": "route", "transforms": "transform",
             "loggers": "logger"}


class ProjectNotFound(ConfigError):
    """There is no readable ``orgloop.yaml`` where the project was looked for."""


@dataclass
class Definition:
    """One source, actor, route, transform or logger, valid against its schema."""

    kind: str
    name: str
    model: Any                 # the pydantic model instance
    raw: dict[str, Any]        # as written, after substitution and workspace overrides
    doc: YamlDocument
    loc: tuple[Any, ...]       # where the item sits in its file, e.g. ("routes", 3)

    @property
    def file(self) -> Path:
        return self.doc.path

    def position(self, *path: Any, key: bool = False) -> tuple[int, int]:
        pos = self.doc.position(self.loc + path, key=key)
        return pos.line, pos.column


@dataclass
class Project:
    root: Path
    file: Path
    workspace: str
    name: str = ""
    settings: m.ProjectFile | None = None
    definitions: dict[str, dict[str, Definition]] = field(default_factory=lambda: {k: {} for k in KINDS})
    broken: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    diagnostics: list[Diagnostic] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    documents: list[YamlDocument] = field(default_factory=list)
    data_dir_override: Path | None = None

    # ----------------------------------------------------------------- problems
    def report(self, file: Path, line: int, column: int, severity: Severity, message: str) -> None:
        self.diagnostics.append(Diagnostic(file, line, column, severity, message))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def sorted_diagnostics(self) -> list[Diagnostic]:
        return sorted(self.diagnostics, key=lambda d: (str(d.file), d.line, d.column, d.message))

    # ----------------------------------------------------------------- views
    @property
    def sources(self) -> dict[str, Definition]:
        return self.definitions["sources"]

    @property
    def actors(self) -> dict[str, Definition]:
        return self.definitions["actors"]

    @property
    def routes(self) -> dict[str, Definition]:
        return self.definitions["routes"]

    @property
    def transforms(self) -> dict[str, Definition]:
        return self.definitions["transforms"]

    @property
    def loggers(self) -> dict[str, Definition]:
        return self.definitions["loggers"]

    @property
    def data_dir(self) -> Path:
        """This workspace's data directory (WAL, checkpoints, dead letters, applied state)."""
        configured = self.settings.runtime.data_dir if self.settings else None
        override = self.data_dir_override or (self.root / configured if configured else None)
        return workspace_data_dir(self.name or self.root.name, self.workspace, override)

    def prompt_path(self, route: Definition) -> Path | None:
        """Resolve ``with.prompt_file``: beside the route file first, then from the project root."""
        w = route.model.with_
        if w is None or not w.prompt_file:
            return None
        for base in (route.file.parent, self.root):
            candidate = (base / w.prompt_file).resolve()
            if candidate.is_file():
                return candidate
        return None

    def prompt_text(self, route: Definition) -> str | None:
        path = self.prompt_path(route)
        return None if path is None else strip_front_matter(path.read_text(encoding="utf-8"))

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The desired state for ``plan``: every definition as written (name keys removed), plus a digest
        of each prompt file and script so that editing one shows up as a change."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for kind in KINDS:
            items: dict[str, dict[str, Any]] = {}
            key = "id" if kind in ("sources", "actors") else "name"
            for name, d in self.definitions[kind].items():
                entry = {k: v for k, v in d.raw.items() if k != key}
                if kind == "routes" and (p := self.prompt_path(d)) is not None:
                    entry["prompt_sha256"] = _digest(p)
                if kind == "transforms" and d.model.type == "script":
                    script = (d.file.parent / d.model.script).resolve()
                    if script.is_file():
                        entry["script_sha256"] = _digest(script)
                items[name] = entry
            out[kind] = items
        return out


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def strip_front_matter(text: str) -> str:
    """Drop a leading ``---`` ... ``---`` YAML front-matter block from a prompt file."""
    if text.startswith("---\n") or text.startswith("---\r\n"):
        end = text.find("\n---", 3)
        if end != -1:
            rest = text[end + 4:]
            return rest[1:] if rest.startswith("\n") else rest.lstrip("\r\n") if rest.startswith("\r") else rest
    return text


def find_project(start: Path | str = ".") -> Path:
    """The ``orgloop.yaml`` at ``start`` (a file or a directory) or in the nearest parent directory."""
    p = Path(start).resolve()
    if p.is_file():
        return p
    for d in (p, *p.parents):
        candidate = d / "orgloop.yaml"
        if candidate.is_file():
            return candidate
    raise ProjectNotFound(f"no orgloop.yaml in {p} or any parent directory (run `orgloop init` to create one)")


def load_project(start: Path | str = ".", *, workspace: str | None = None, env: Mapping[str, str] | None = None,
                 data_dir: Path | None = None) -> Project:
    """Read and validate a whole project; check ``project.errors`` before using it."""
    from orgloop.config.workspaces import selected_workspace

    project_file = find_project(start)
    root = project_file.parent
    ws = workspace or selected_workspace(root)
    project = Project(root=root, file=project_file, workspace=ws, data_dir_override=data_dir)
    shell = dict(os.environ if env is None else env)
    try:
        dotenv = read_dotenv(root / ".env")
    except VariableError as exc:
        project.report(root / ".env", 1, 1, "error", str(exc))
        dotenv = {}
    overlay = _load_workspace(project, root, ws, {**dotenv, **shell})
    variables = {**dotenv, **{k: str(v).lower() if isinstance(v, bool) else str(v)
                              for k, v in (overlay.variables if overlay else {}).items()}, **shell}
    project.variables = variables

    doc = _parse(project, project_file)
    if doc is None:
        return project
    data = _substitute(project, doc, variables)
    if isinstance(data, dict) and overlay is not None:
        for section in ("defaults", "runtime"):
            if getattr(overlay, section):
                data[section] = deep_merge(data.get(section) or {}, getattr(overlay, section))
    try:
        project.settings = m.ProjectFile.model_validate(data)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, m.ProjectFile, doc))
    name = data.get("metadata", {}).get("name") if isinstance(data, dict) and isinstance(
        data.get("metadata"), dict) else None
    project.name = name if isinstance(name, str) else root.name

    for path, list_key, index in _listed_files(project, doc, data):
        if not path.is_file():
            line, col = _pos(doc, (list_key, index))
            project.report(project_file, line, col, "error", f"{list_key} file not found: {path.relative_to(root)}"
                           if path.is_relative_to(root) else f"{list_key} file not found: {path}")
            continue
        _load_group(project, path, variables, overlay)
    routes_dir = root / "routes"
    if routes_dir.is_dir():
        for path in sorted(p for p in routes_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
            _load_group(project, path, variables, overlay)
    if overlay is not None:
        _check_overlay_targets(project, overlay)
    return project


def _workspace_path(root: Path, name: str) -> Path:
    return root / "workspaces" / f"{name}.yaml"


def _pos(doc: YamlDocument, loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
    p = doc.position(loc, key=key)
    return p.line, p.column


def _parse(project: Project, path: Path) -> YamlDocument | None:
    try:
        doc = load_yaml(path)
    except YamlSyntaxError as exc:
        project.report(path, exc.position.line, exc.position.column, "error", str(exc))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        project.report(path, 1, 1, "error", f"cannot read file: {exc}")
        return None
    for key, pos in doc.duplicates:
        project.report(path, pos.line, pos.column, "error", f"duplicate key {key!r} (YAML keeps only the last)")
    project.documents.append(doc)
    return doc


def _substitute(project: Project, doc: YamlDocument, variables: Mapping[str, str]) -> Any:
    def on_error(path: tuple[Any, ...], exc: VariableError) -> None:
        line, col = _pos(doc, path)
        project.report(doc.path, line, col, "error", str(exc))

    return substitute(doc.data, variables, on_error)


def _load_workspace(project: Project, root: Path, name: str, variables: Mapping[str, str]) -> m.WorkspaceFile | None:
    path = _workspace_path(root, name)
    if not path.is_file():
        if name != "default":
            project.report(root / "orgloop.yaml", 1, 1, "error",
                           f"workspace {name!r} does not exist (expected {path.relative_to(root)}; "
                           f"create it with `orgloop workspace new {name}`)")
        return None
    doc = _parse(project, path)
    if doc is None:
        return None
    data = _substitute(project, doc, variables)
    try:
        return m.WorkspaceFile.model_validate(data)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, m.WorkspaceFile, doc))
        return None


def _listed_files(project: Project, doc: YamlDocument, data: Any) -> Iterator[tuple[Path, str, int]]:
    """Files named in orgloop.yaml's connectors/transforms/loggers lists (globs expanded), each once."""
    if not isinstance(data, dict):
        return
    seen: set[Path] = set()
    base = project.file.parent
    for list_key in ("connectors", "transforms", "loggers"):
        entries = data.get(list_key) or []
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, str):
                continue
            if any(c in entry for c in "*?["):
                matches = sorted(base.glob(entry))
                if not matches:
                    line, col = _pos(doc, (list_key, index))
                    project.report(project.file, line, col, "warning", f"pattern {entry!r} matches no file")
                paths = matches
            else:
                paths = [(base / entry)]
            for path in paths:
                path = path.resolve()
                if path not in seen:
                    seen.add(path)
                    yield path, list_key, index


def _load_group(project: Project, path: Path, variables: Mapping[str, str],
                overlay: m.WorkspaceFile | None) -> None:
    doc = _parse(project, path)
    if doc is None:
        return
    data = _substitute(project, doc, variables)
    if not isinstance(data, dict):
        project.report(path, 1, 1, "error", "expected a mapping with apiVersion, kind and items")
        return
    kind = data.get("kind")
    model = m.GROUP_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None or kind in ("Project", "Workspace"):
        line, col = _pos(doc, ("kind",))
        expected = ", ".join(_GROUP_ITEMS)
        project.report(path, line, col, "error", f"kind must be one of {expected}, got {kind!r}")
        return
    item_keys = _GROUP_ITEMS[kind]
    if overlay is not None:
        for key in item_keys:
            overrides = getattr(overlay, key)
            items = data.get(key)
            if overrides and isinstance(items, list):
                ident = "id" if key in ("sources", "actors") else "name"
                data[key] = [deep_merge(it, overrides[it[ident]])
                             if isinstance(it, dict) and it.get(ident) in overrides else it for it in items]
    try:
        group: Any = model.model_validate(data)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, model, doc))
        group = None
    for key in item_keys:
        items = data.get(key)
        if isinstance(items, list):
            _add_items(project, doc, key, items, getattr(group, key) if group is not None else None)


def _add_items(project: Project, doc: YamlDocument, kind: str, items: list[Any], valid: list[Any] | None) -> None:
    """File the items of one group; ``valid`` are their models when the whole file validated, else each item
    is validated on its own (its errors were already reported) so the valid ones still count."""
    item_model = _ITEM_MODELS[kind]
    ident = "id" if kind in ("sources", "actors") else "name"
    table = project.definitions[kind]
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            continue
        name = raw.get(ident)
        if valid is not None:
            instance = valid[index]
        else:
            try:
                instance = item_model.model_validate(raw)
            except ValidationError:
                if isinstance(name, str):
                    project.broken[kind].add(name)
                continue
        if name in table:
            first = table[name]
            line, col = _pos(doc, (kind, index, ident))
            fl, fc = first.position(ident)
            where = os.path.relpath(first.file, project.root)
            project.report(doc.path, line, col, "error",
                           f"duplicate {_SINGULAR[kind]} {name!r}: already defined at {where}:{fl}:{fc}")
            continue
        table[name] = Definition(kind, name, instance, raw, doc, (kind, index))


def _check_overlay_targets(project: Project, overlay: m.WorkspaceFile) -> None:
    """A workspace override naming an item that does not exist is almost certainly a typo."""
    from orgloop.config.diagnostics import did_you_mean

    doc = next((d for d in project.documents if d.path == _workspace_path(project.root, project.workspace)), None)
    if doc is None:
        return
    for kind in KINDS:
        for name in getattr(overlay, kind):
            if name not in project.definitions[kind] and name not in project.broken[kind]:
                line, col = _pos(doc, (kind, name), key=True)
                project.report(doc.path, line, col, "error", f"override for unknown {_SINGULAR[kind]} {name!r}"
                               + did_you_mean(name, project.definitions[kind]))
