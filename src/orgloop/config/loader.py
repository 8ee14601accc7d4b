"""Load a project directory (``orgloop.yaml`` and the files it names) into checked definitions.

Loading never stops at the first problem: every file is read and validated, problems are collected as
:class:`~orgloop.config.diagnostics.Diagnostic` objects, and whatever is valid is kept so that the
cross-file checks (:mod:`orgloop.config.checks`) can run too. Only a project that cannot be read at all
(no ``orgloop.yaml``) raises :class:`ProjectNotFound`.

Order of work: the selected workspace file (its ``variables`` feed substitution), ``orgloop.yaml`` (with
any sources, actors, routes, transforms and loggers written inline in it), the
connector/transform/logger files it lists (paths or globs, relative to it), the route files discovered
in ``routes/*.yaml|yml``; each file is parsed, ``${VAR}``-substituted, merged with the workspace's
overrides for its items, and validated against its schema, item by item. A schema error in a value that
came from a workspace override is reported in the workspace file. Items that fail their schema are kept
aside (``Project.invalid``) so the cross-file checks still examine their references.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from pydantic import BaseModel, ValidationError

from orgloop.config import models as m
from orgloop.config._gc import cyclic_gc_paused
from orgloop.config.diagnostics import Diagnostic, Locator, Severity, did_you_mean, from_validation_error
from orgloop.config.variables import DotenvError, VariableError, read_dotenv, substitute
from orgloop.config.workspaces import (DEFAULT, deep_merge, list_workspaces, selected_workspace, workspace_data_dir,
                                      workspace_file)
from orgloop.config.yamlfile import YamlDocument, YamlSyntaxError, load_yaml
from orgloop.errors import ConfigError

__all__ = ["Project", "Definition", "Overlay", "ProjectNotFound", "load_project", "find_project", "check_every_file",
           "KINDS"]

KINDS = ("sources", "actors", "routes", "transforms", "loggers")
_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "sources": m.Source, "actors": m.Actor, "routes": m.Route, "transforms": m.Transform, "loggers": m.Logger}
_GROUP_ITEMS = {"ConnectorGroup": ("sources", "actors"), "RouteGroup": ("routes",),
                "TransformGroup": ("transforms",), "LoggerGroup": ("loggers",)}
_IDENT = {"sources": "id", "actors": "id", "routes": "name", "transforms": "name", "loggers": "name"}
_INLINE = ("sources", "actors", "routes", "transforms", "loggers")   # item kinds orgloop.yaml may hold inline
_SINGULAR = {"sources": "source", "actors": "actor", "routes": "route", "transforms": "transform",
             "loggers": "logger"}


class ProjectNotFound(ConfigError):
    """There is no readable ``orgloop.yaml`` where the project was looked for."""


@dataclass(frozen=True)
class Overlay:
    """The selected workspace file: its validated model and its document (for positions)."""

    model: m.WorkspaceFile
    doc: YamlDocument


@dataclass
class Definition:
    """One source, actor, route, transform or logger (valid against its schema unless it sits in
    ``Project.invalid``, where ``model`` is None and ``name`` may be empty)."""

    kind: str
    name: str
    model: Any                 # the pydantic model instance, None when invalid
    raw: dict[str, Any]        # as written, after substitution and workspace overrides
    doc: YamlDocument
    loc: tuple[Any, ...]       # where the item sits in its file, e.g. ("routes", 3)
    locate: Locator | None = None   # places an error in the workspace file when an override supplied the value

    @property
    def file(self) -> Path:
        return self.doc.path

    def position(self, *path: Any, key: bool = False) -> tuple[int, int]:
        """Line and column of ``path`` inside this item (see :meth:`YamlDocument.position`)."""
        pos = self.doc.position(self.loc + path, key=key)
        return pos.line, pos.column

    def value(self, *path: Any) -> Any:
        """The raw value at ``path`` inside this item, or None when absent."""
        value: Any = self.raw
        for part in path:
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                return None
        return value


@dataclass
class Project:
    """A loaded project: valid definitions by kind and name, and every problem found."""

    root: Path
    file: Path
    workspace: str
    name: str = ""
    settings: m.ProjectFile | None = None
    definitions: dict[str, dict[str, Definition]] = field(default_factory=lambda: {k: {} for k in KINDS})
    invalid: dict[str, list[Definition]] = field(default_factory=lambda: {k: [] for k in KINDS})
    broken: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})  # names in invalid
    diagnostics: list[Diagnostic] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)           # every YAML file read, parsed or not
    documents: list[YamlDocument] = field(default_factory=list)
    data_dir_override: Path | None = None
    overlay: Overlay | None = None                           # the workspace file, when there is a valid one
    _prompts: dict[tuple[Path, str], list[Path]] = field(default_factory=dict, repr=False)

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
        """Diagnostics by file (as shown, relative to the root), line, column, then message."""
        return sorted(self.diagnostics, key=lambda d: (d.display_file(self.root), d.line, d.column, d.message))

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
        """This workspace's data directory (WAL, checkpoints, dead letters, applied state): the explicit
        override, else ``<runtime.data_dir>/<workspace>`` when configured, else the per-user default."""
        configured = self.settings.runtime.data_dir if self.settings else None
        override = self.data_dir_override or (
            self.root / Path(configured).expanduser() / self.workspace if configured else None)
        return workspace_data_dir(self.name or self.root.name, self.root, self.workspace, override)

    def prompt_candidates(self, route_file: Path, prompt_file: str) -> list[Path]:
        """Where ``prompt_file`` of a route in ``route_file`` may live, resolved, in the order tried:
        beside the route file, then from the project root (cached: many routes share a prompt)."""
        key = (route_file.parent, prompt_file)
        found = self._prompts.get(key)
        if found is None:
            bases = dict.fromkeys((route_file.parent, self.root))
            found = self._prompts[key] = [(base / prompt_file).resolve() for base in bases]
        return found

    def prompt_path(self, route: Definition) -> Path | None:
        """Resolve ``with.prompt_file``: beside the route file first, then from the project root."""
        w = route.model.with_
        if w is None or not w.prompt_file:
            return None
        return next((c for c in self.prompt_candidates(route.file, w.prompt_file) if c.is_file()), None)

    def prompt_text(self, route: Definition) -> str | None:
        """The route's prompt template, front matter stripped; raises :class:`ConfigError` for a file that
        resolves outside the project directory (``orgloop validate`` reports it at file:line:col first)."""
        path = self.prompt_path(route)
        if path is None:
            return None
        root = self.root.resolve()
        if not path.is_relative_to(root):
            raise ConfigError(f"route {route.name!r}: prompt_file {route.model.with_.prompt_file!r} is outside "
                              f"the project directory {root}")
        return strip_front_matter(path.read_text(encoding="utf-8"))

    def state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The desired state for ``plan``: every definition as written (name keys removed), plus a digest
        of each prompt file and script so that editing one shows up as a change."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        digests: dict[Path, str] = {}           # many routes share one prompt file
        for kind in KINDS:
            items: dict[str, dict[str, Any]] = {}
            key = _IDENT[kind]
            for name, d in self.definitions[kind].items():
                entry = {k: v for k, v in d.raw.items() if k != key}
                if kind == "routes" and (p := self.prompt_path(d)) is not None:
                    if p not in digests:
                        digests[p] = _digest(p)
                    entry["prompt_sha256"] = digests[p]
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


def find_project(start: Path | str = ".", *, search_parents: bool = True) -> Path:
    """The ``orgloop.yaml`` at ``start`` (a file or a directory) or, with ``search_parents``, in the nearest
    parent directory. Raises :class:`ProjectNotFound`."""
    p = Path(start).resolve()
    if p.is_file():
        return p
    for d in (p, *p.parents) if search_parents else (p,):
        candidate = d / "orgloop.yaml"
        if candidate.is_file():
            return candidate
    where = f"{p} or any parent directory" if search_parents else str(p)
    raise ProjectNotFound(f"no orgloop.yaml in {where} (run `orgloop init` to create one)")


def load_project(start: Path | str = ".", *, workspace: str | None = None, env: Mapping[str, str] | None = None,
                 data_dir: Path | None = None) -> Project:
    """Read and validate a whole project; check ``project.errors`` before using it.

    Raises :class:`ProjectNotFound` when there is no readable ``orgloop.yaml`` and
    :class:`~orgloop.config.workspaces.WorkspaceError` for an invalid workspace name."""
    with cyclic_gc_paused():
        return _load(start, workspace, env, data_dir)


def _load(start: Path | str, workspace: str | None, env: Mapping[str, str] | None, data_dir: Path | None) -> Project:
    project_file = find_project(start)
    root = project_file.parent
    try:
        text = project_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectNotFound(f"cannot read {project_file}: {exc}") from None
    ws = selected_workspace(root, workspace)
    project = Project(root=root, file=project_file, workspace=ws, data_dir_override=data_dir)
    shell = dict(os.environ if env is None else env)
    try:
        dotenv = read_dotenv(root / ".env")
    except DotenvError as exc:
        project.report(root / ".env", exc.line, 1, "error", str(exc))
        dotenv = {}
    overlay, ws_doc, ws_data = _load_workspace(project, ws, {**dotenv, **shell})
    project.overlay = overlay
    variables = {**dotenv, **{k: str(v).lower() if isinstance(v, bool) else str(v)
                              for k, v in (overlay.model.variables if overlay else {}).items()}, **shell}
    project.variables = variables

    doc = _parse(project, project_file, text)
    if doc is None:
        project.name = root.name
        return project
    data = _substitute(project, doc, variables)
    overridden: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]] = {}
    if isinstance(data, dict) and overlay is not None:
        for section in ("defaults", "runtime"):
            override = getattr(overlay.model, section)
            if override:
                base = data.get(section)
                data = {**data, section: deep_merge(base if isinstance(base, dict) else {}, override)}
                overridden[(section,)] = ((section,), override)
    if isinstance(data, dict):
        data = _merge_overrides(data, _INLINE, overlay, overridden)
    inline_valid: m.ProjectFile | None = None
    try:
        project.settings = inline_valid = m.ProjectFile.model_validate(data)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, m.ProjectFile, doc, data=data, locate=_locator(
            doc, overlay, overridden)))
        project.settings = _settings_without_inline_items(data)
    metadata = data.get("metadata") if isinstance(data, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    project.name = name if isinstance(name, str) and name else root.name
    for key in _INLINE if isinstance(data, dict) else ():
        items = data.get(key)
        if isinstance(items, list):
            _add_items(project, doc, key, items, getattr(inline_valid, key) if inline_valid is not None else None,
                       _locator(doc, overlay, overridden))

    for path, list_key, index in _listed_files(project, doc, data):
        if not path.is_file():
            line, col = _pos(doc, (list_key, index))
            shown = os.path.relpath(path, root) if path.is_relative_to(root.resolve()) else str(path)
            project.report(project_file, line, col, "error", f"{list_key} file not found: {shown}")
            continue
        _load_group(project, path, variables, overlay)
    routes_dir = root / "routes"
    if routes_dir.is_dir():
        for path in sorted(p for p in routes_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()):
            _load_group(project, path, variables, overlay)
    if ws_doc is not None:
        _check_overlay_targets(project, ws_doc, ws_data)
    return project


def _pos(doc: YamlDocument, loc: tuple[Any, ...], key: bool = False) -> tuple[int, int]:
    p = doc.position(loc, key=key)
    return p.line, p.column


def _parse(project: Project, path: Path, text: str | None = None) -> YamlDocument | None:
    """Parse one file (each file once); problems become diagnostics and the result is None."""
    project.files.append(path)
    try:
        doc = load_yaml(path, text)
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
    """The document's values with ``${VAR}`` substituted (the parsed values themselves when the file holds
    no ``$`` at all: callers must not modify the result in place)."""
    if "$" not in doc.text:
        return doc.data

    def on_error(path: tuple[Any, ...], exc: VariableError) -> None:
        line, col = _pos(doc, path)
        project.report(doc.path, line, col, "error", str(exc))

    return substitute(doc.data, variables, on_error)


def _locator(doc: YamlDocument, overlay: Overlay | None,
             overridden: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]]) -> Locator:
    """Place a schema error: in the workspace file when the value it concerns came from an override
    (``overridden`` maps an item's location in ``doc`` to its location in the workspace file and the
    override itself), else in ``doc``."""

    def locate(loc: tuple[Any, ...], kind: str) -> tuple[YamlDocument, tuple[Any, ...]]:
        if overlay is not None and kind != "missing":
            for size in (1, 2):
                hit = overridden.get(loc[:size])
                if hit is not None and _has_path(hit[1], loc[size:]):
                    return overlay.doc, hit[0] + loc[size:]
        return doc, loc

    return locate


def _has_path(data: Any, path: tuple[Any, ...]) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _load_workspace(project: Project, name: str, variables: Mapping[str, str] | None
                    ) -> tuple[Overlay | None, YamlDocument | None, Any]:
    """Parse and validate ``workspaces/<name>.yaml`` (``${VAR}`` substituted unless ``variables`` is None):
    the overlay when valid, and the document and its values whenever the file could be parsed."""
    path = workspace_file(project.root, name)
    if not path.is_file():
        if name != DEFAULT:
            project.report(project.file, 1, 1, "error",
                           f"workspace {name!r} does not exist (expected {path.relative_to(project.root)}; "
                           f"create it with `orgloop workspace new {name}`)")
        return None, None, None
    doc = _parse(project, path)
    if doc is None:
        return None, None, None
    data = doc.data if variables is None else _substitute(project, doc, variables)
    try:
        return Overlay(m.WorkspaceFile.model_validate(data), doc), doc, data
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, m.WorkspaceFile, doc, data=data))
        return None, doc, data


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


def _load_group(project: Project, path: Path, variables: Mapping[str, str], overlay: Overlay | None) -> None:
    if path in project.files or path.resolve() in project.files:
        return
    doc = _parse(project, path)
    if doc is None:
        return
    data = _substitute(project, doc, variables)
    if not isinstance(data, dict):
        project.report(path, 1, 1, "error", "expected a mapping with apiVersion, kind and items")
        return
    kind = data.get("kind")
    model = m.GROUP_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None or kind not in _GROUP_ITEMS:
        line, col = _pos(doc, ("kind",))
        expected = ", ".join(_GROUP_ITEMS)
        hint = did_you_mean(kind, _GROUP_ITEMS) if isinstance(kind, str) else ""
        project.report(path, line, col, "error", f"kind must be one of {expected}, got {kind!r}{hint}")
        return
    item_keys = _GROUP_ITEMS[kind]
    overridden: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]] = {}
    data = _merge_overrides(data, item_keys, overlay, overridden)
    try:
        group: Any = model.model_validate(data)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, model, doc, data=data,
                                                         locate=_locator(doc, overlay, overridden)))
        group = None
    for key in item_keys:
        items = data.get(key)
        if isinstance(items, list):
            _add_items(project, doc, key, items, getattr(group, key) if group is not None else None,
                       _locator(doc, overlay, overridden))


def _merge_overrides(data: dict[str, Any], item_keys: tuple[str, ...], overlay: Overlay | None,
                     overridden: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]]) -> dict[str, Any]:
    """``data`` with the workspace's overrides deep-merged into the items under ``item_keys``; records in
    ``overridden`` where each merged item sits in the workspace file (see :func:`_locator`)."""
    if overlay is None:
        return data
    for key in item_keys:
        overrides = getattr(overlay.model, key)
        items = data.get(key)
        if not overrides or not isinstance(items, list):
            continue
        ident = _IDENT[key]
        merged = list(items)
        for index, item in enumerate(items):
            name = item.get(ident) if isinstance(item, dict) else None
            if isinstance(name, str) and name in overrides:
                merged[index] = deep_merge(item, overrides[name])
                overridden[(key, index)] = ((key, name), overrides[name])
        data = {**data, key: merged}
    return data


def _settings_without_inline_items(data: Any) -> m.ProjectFile | None:
    """The project settings when only inline items (already reported) are invalid, else None."""
    if not isinstance(data, dict):
        return None
    core = {k: v for k, v in data.items() if k not in ("sources", "actors", "routes")}
    for key in ("transforms", "loggers"):
        if isinstance(core.get(key), list):
            core[key] = [entry for entry in core[key] if not isinstance(entry, dict)]
    try:
        return m.ProjectFile.model_validate(core)
    except ValidationError:
        return None


def _add_items(project: Project, doc: YamlDocument, kind: str, items: list[Any], valid: list[Any] | None,
               locate: Locator) -> None:
    """File the items of one group; ``valid`` are their models when the whole file validated, else each item
    is validated on its own (its errors were already reported) so the valid ones still count."""
    item_model = _ITEM_MODELS[kind]
    ident = _IDENT[kind]
    table = project.definitions[kind]
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            continue
        name = raw.get(ident)
        instance = None
        if valid is not None:
            instance = valid[index]
        else:
            try:
                instance = item_model.model_validate(raw)
            except ValidationError:
                pass
        if isinstance(name, str) and (name in table or name in project.broken[kind]):
            first = table.get(name) or next(d for d in project.invalid[kind] if d.name == name)
            line, col = _pos(doc, (kind, index, ident))
            fl, fc = first.position(ident)
            where = os.path.relpath(first.file, project.root)
            project.report(doc.path, line, col, "error",
                           f"duplicate {_SINGULAR[kind]} {name!r}: already defined at {where}:{fl}:{fc}")
            continue
        definition = Definition(kind, name if isinstance(name, str) else "", instance, raw, doc, (kind, index),
                                locate)
        if instance is None:
            project.invalid[kind].append(definition)
            if isinstance(name, str):
                project.broken[kind].add(name)
        else:
            table[definition.name] = definition


def _check_overlay_targets(project: Project, doc: YamlDocument, data: Any) -> None:
    """A workspace override naming an item that does not exist is almost certainly a typo (checked on the
    values as written, so even a workspace file with schema errors gets it)."""
    if not isinstance(data, dict):
        return
    for kind in KINDS:
        section = data.get(kind)
        for name in section if isinstance(section, dict) else ():
            if name not in project.definitions[kind] and name not in project.broken[kind]:
                line, col = _pos(doc, (kind, name), key=True)
                project.report(doc.path, line, col, "error", f"override for unknown {_SINGULAR[kind]} {name!r}"
                               + did_you_mean(str(name), [*project.definitions[kind], *project.broken[kind]]))


_LISTED_DIRS = ("connectors", "transforms", "loggers")


def check_every_file(project: Project) -> Project:
    """What ``orgloop validate`` checks beyond the files the selected workspace loads: every other
    workspace file (its schema as written, without ``${VAR}`` substitution, and its override targets),
    and, as warnings, YAML files in connectors/, transforms/ or loggers/ that orgloop.yaml does not list
    (so they are not loaded). Returns the project for chaining."""
    for name in list_workspaces(project.root):
        if name not in (DEFAULT, project.workspace):
            _, doc, data = _load_workspace(project, name, None)
            if doc is not None:
                _check_overlay_targets(project, doc, data)
    loaded = {p.resolve() for p in project.files}
    for list_key in _LISTED_DIRS:
        folder = project.root / list_key
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.suffix in (".yaml", ".yml") and path.is_file() and path.resolve() not in loaded:
                project.report(path, 1, 1, "warning", f"not listed under {list_key}: in orgloop.yaml, so "
                               "this file is not loaded")
    return project
