"""Checks across files, after every file passed (or failed) its own schema.

Each check adds diagnostics to the project and never stops the others: routes naming unknown sources,
actors, transforms or event types; prompt files and scripts that are missing or escape the project
directory; plugins that are not installed; and possible event loops (an actor whose own output comes
back through a source that routes to it again). All checks are linear in the size of the project.
"""
from __future__ import annotations

import os
import re
from fnmatch import translate
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ValidationError

from orgloop import plugins
from orgloop.config._gc import cyclic_gc_paused
from orgloop.config.diagnostics import Severity, did_you_mean, from_validation_error
from orgloop.config.loader import Definition, Project
from orgloop.config.models import EVENT_TYPES

__all__ = ["check_project"]

_GLOB = re.compile(r"[*?\[]")


def check_project(project: Project) -> Project:
    """Run every cross-file check; returns the project for chaining."""
    with cyclic_gc_paused():
        _check_plugins(project)
        _check_plugin_configs(project)
        _check_bus(project)
        _check_routes(project)
        _check_scripts(project)
        _check_loops(project)
        _check_ingress(project)
    return project


def _all(project: Project, kind: str) -> Iterator[Definition]:
    """Every item of ``kind``, valid or not: references are checked on the raw values, so an item with a
    schema error still gets its unknown names reported."""
    yield from project.definitions[kind].values()
    yield from project.invalid[kind]


def _text(d: Definition, *path: Any) -> str | None:
    value = d.value(*path)
    return value if isinstance(value, str) and value else None


def _error(project: Project, d: Definition, path: tuple[Any, ...], message: str,
           severity: Severity = "error") -> None:
    line, col = d.position(*path)
    project.report(d.file, line, col, severity, message)


def _check_plugins(project: Project) -> None:
    installed = {kind: set(plugins.available(kind)) for kind in ("sources", "actors", "transforms", "loggers")}

    def check(kind: str, d: Definition, field: str) -> None:
        name = _text(d, field)
        if name is None:
            return
        short = plugins.plugin_name(name)
        if short not in installed[kind]:
            _error(project, d, (field,), f"no {kind[:-1]} plugin {name!r} is installed"
                   + (plugins.distribution_hint(kind, name) or did_you_mean(short, installed[kind]))
                   + f" (installed: {', '.join(sorted(installed[kind])) or 'none'})")

    for kind, field in (("sources", "connector"), ("actors", "connector"), ("loggers", "type")):
        for d in _all(project, kind):
            check(kind, d, field)
    for d in _all(project, "transforms"):
        if d.value("type") == "package":
            check("transforms", d, "package")


def _plugin_of(d: Definition) -> tuple[str, str] | None:
    """(kind, name) of the plugin that takes this definition's ``config``."""
    if d.kind in ("sources", "actors"):
        name = _text(d, "connector")
    elif d.kind == "loggers":
        name = _text(d, "type")
    elif d.value("type") == "script":
        name = "script"
    else:
        name = _text(d, "package") if d.value("type") == "package" else None
    return (d.kind, name) if name else None


def _model(kind: str, name: str) -> type[BaseModel] | None:
    """The plugin's config model; None when it is not installed (reported elsewhere) or declares none."""
    try:
        return plugins.config_model(plugins.load(kind, name))
    except (plugins.PluginError, ImportError):
        return None


def _secret_at(model: type[BaseModel], config: Any) -> Any:
    """``secret(loc)`` for :func:`from_validation_error`: whether the value at ``loc`` is a secret field."""
    marker = object()
    masked = plugins.mask_secrets(model, config, lambda v: marker)

    def secret(loc: tuple[Any, ...]) -> bool:
        value = masked
        for part in loc:
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value):
                value = value[part]
            else:
                return False
        return value is marker
    return secret


def _check_plugin_configs(project: Project) -> None:
    """Every source's, actor's, transform's and logger's ``config`` against its plugin's model."""
    models: dict[tuple[str, str], type[BaseModel] | None] = {}
    for kind in ("sources", "actors", "transforms", "loggers"):
        for d in _all(project, kind):
            which = _plugin_of(d)
            config = d.value("config")
            if which is None or not isinstance(config if config is not None else {}, dict):
                continue
            key = (which[0], plugins.plugin_name(which[1]))
            if key not in models:
                models[key] = _model(*key)
            model = models[key]
            if model is None:
                continue
            config = config or {}
            try:
                model.model_validate(config)
            except ValidationError as exc:
                project.diagnostics.extend(from_validation_error(
                    exc, model, d.doc, prefix=d.loc + ("config",), locate=d.locate, data=config,
                    secret=_secret_at(model, config)))


def _check_bus(project: Project) -> None:
    """``runtime.bus`` names an installed bus, and ``runtime.bus_options`` match its model."""
    settings = project.settings
    doc = next((doc for doc in project.documents if doc.path == project.file), None)
    if settings is None or doc is None:
        return
    bus = settings.runtime.bus
    installed = plugins.available("buses")
    if plugins.plugin_name(bus) not in installed:
        pos = doc.position(("runtime", "bus"))
        project.report(project.file, pos.line, pos.column, "error", f"no bus plugin {bus!r} is installed"
                       + (plugins.distribution_hint("buses", bus) or did_you_mean(bus, installed))
                       + f" (installed: {', '.join(installed)})")
        return
    model = _model("buses", bus)
    options = settings.runtime.bus_options
    if model is None:
        return
    try:
        model.model_validate(options)
    except ValidationError as exc:
        project.diagnostics.extend(from_validation_error(exc, model, doc, prefix=("runtime", "bus_options"),
                                                         data=options, secret=_secret_at(model, options)))


class _Names:
    """The names of one kind that a reference may use: defined ones, and invalid ones (already reported,
    so a reference to them is not an error too)."""

    def __init__(self, project: Project, kind: str) -> None:
        self.defined = project.definitions[kind]
        self.broken = project.broken[kind]
        self._hints: dict[str, str] = {}

    def unknown(self, name: str) -> bool:
        return name not in self.defined and name not in self.broken

    def hint(self, name: str) -> str:
        """`` (did you mean 'x'?)`` for the closest name, if any. Cached: a renamed source referenced by
        hundreds of routes costs one search (each takes ~15 ms among 2,000 names)."""
        if name not in self._hints:
            self._hints[name] = did_you_mean(name, [*self.defined, *self.broken])
        return self._hints[name]


def _check_routes(project: Project) -> None:
    sources, actors, transforms = (_Names(project, k) for k in ("sources", "actors", "transforms"))
    known_types = set(EVENT_TYPES)
    for s in project.sources.values():
        known_types.update(s.model.emits or ())
    shown_types = ", ".join(sorted(known_types))
    root = project.root.resolve()
    patterns: dict[str, bool] = {}
    for d in _all(project, "routes"):
        src = _text(d, "when", "source")
        if src is None:
            pass
        elif _GLOB.search(src):
            if src not in patterns:
                pattern = re.compile(translate(src))
                patterns[src] = src == "*" or any(pattern.fullmatch(s) for s in sources.defined)
            if not patterns[src]:
                _error(project, d, ("when", "source"), f"source pattern {src!r} matches no source", "warning")
        elif sources.unknown(src):
            _error(project, d, ("when", "source"), f"unknown source {src!r}" + sources.hint(src))
        events = d.value("when", "events")
        for i, event_type in enumerate(events if isinstance(events, list) else ()):
            if isinstance(event_type, str) and event_type not in known_types and not _GLOB.search(event_type):
                _error(project, d, ("when", "events", i), f"unknown event type {event_type!r}"
                       + did_you_mean(event_type, known_types) + f"; known types: {shown_types}")
        actor = _text(d, "then", "actor")
        if actor is not None and actors.unknown(actor):
            _error(project, d, ("then", "actor"), f"unknown actor {actor!r}" + actors.hint(actor))
        refs = d.value("transforms")
        for i in range(len(refs) if isinstance(refs, list) else 0):
            ref = _text(d, "transforms", i, "ref")
            if ref is not None and transforms.unknown(ref):
                _error(project, d, ("transforms", i, "ref"), f"unknown transform {ref!r}"
                       + transforms.hint(ref))
        prompt_file = _text(d, "with", "prompt_file")
        if prompt_file is not None:
            _check_prompt(project, d, prompt_file, root)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _check_prompt(project: Project, d: Definition, prompt_file: str, root: Path) -> None:
    """The prompt file used is the first candidate that exists; it must lie inside ``root`` (resolved)."""
    candidates = project.prompt_candidates(d.file, prompt_file)
    used = next((c for c in candidates if c.is_file()), None)
    if (used is not None and not _inside(used, root)) or (used is None and not any(
            _inside(c, root) for c in candidates)):
        _error(project, d, ("with", "prompt_file"), f"prompt_file {prompt_file!r} is outside the project directory")
    elif used is None:
        rel = os.path.relpath(d.file.parent, project.root)
        _error(project, d, ("with", "prompt_file"), f"prompt_file {prompt_file!r} not found (looked in "
               f"{rel if rel != '.' else 'the project root'}{' and the project root' if rel != '.' else ''})")


def _check_scripts(project: Project) -> None:
    root = project.root.resolve()
    for d in _all(project, "transforms"):
        script = _text(d, "script")
        if d.value("type") != "script" or script is None:
            continue
        path = (d.file.parent / script).resolve()
        if not _inside(path, root):
            _error(project, d, ("script",), f"script {script!r} is outside the project directory")
        elif not path.is_file():
            _error(project, d, ("script",), f"script {script!r} not found (resolved to "
                   f"{os.path.relpath(path, project.root)})")
        elif not os.access(path, os.X_OK):
            _error(project, d, ("script",), f"script {script!r} is not executable (chmod +x it)")


# ---------------------------------------------------------------------------- loops
Node = tuple[str, str]


def _channel(d: Definition, project: Project) -> str:
    """What an actor writes to and a source reads from, as far as loops go: the platform (connector
    plugin); for files, the very file (an actor appending to the file a source reads)."""
    plugin = plugins.plugin_name(d.model.connector)
    if plugin == "file":
        path = d.model.config.get("path")
        return f"file {(project.root / path).resolve()}" if isinstance(path, str) else f"file of {d.kind} {d.name}"
    return plugin


def _check_loops(project: Project) -> None:
    """Strongly connected components of route -> actor -> channel -> source -> route. An actor feeds
    every source on its channel; going through a channel node keeps the graph linear in the project's
    size however many actors and sources share a platform."""
    routes, actors, sources = project.routes, project.actors, project.sources
    readers: dict[str, list[str]] = {}
    for sid, s in sources.items():
        readers.setdefault(_channel(s, project), []).append(sid)
    writes = {aid: ch for aid, a in actors.items() if (ch := _channel(a, project)) in readers}
    if not writes:
        return
    fed_sources = {sid for ch in set(writes.values()) for sid in readers[ch]}
    exact: dict[str, list[str]] = {}
    globbed: list[tuple[re.Pattern[str], str]] = []
    for name, d in routes.items():
        src = d.model.when.source
        if _GLOB.search(src):
            globbed.append((re.compile(translate(src)), name))
        else:
            exact.setdefault(src, []).append(name)
    listening: dict[str, list[str]] = {}
    for sid in fed_sources:
        emits = set(sources[sid].model.emits or ())
        names = exact.get(sid, []) + [n for p, n in globbed if p.fullmatch(sid)]
        listening[sid] = [n for n in names if _types_overlap(routes[n].model.when.events, emits)]

    def successors(node: Node) -> list[Node]:
        kind, name = node
        if kind == "route":
            actor = routes[name].model.then.actor
            return [("actor", actor)] if actor in writes else []
        if kind == "actor":
            return [("channel", writes[name])]
        if kind == "channel":
            return [("source", s) for s in readers[name]]
        return [("route", r) for r in listening.get(name, ())]

    order = {name: i for i, name in enumerate(routes)}
    for component in _strong_components([("route", n) for n in routes], successors):
        route_nodes = [n for n in component if n[0] == "route"]
        if not route_nodes:
            continue
        first = min(route_nodes, key=lambda n: order[n[1]])
        cycle = _cycle_through(first, set(component), successors)
        others = len(route_nodes) - 1
        more = f" (and {others} more route{'s' if others > 1 else ''} in loops through the same actors)" \
            if others else ""
        _error(project, routes[first[1]], ("then", "actor"), "possible event loop (agent ping-pong): "
               + _describe_cycle(cycle) + more
               + "; add a filter (e.g. on provenance.author_type) or a dedup transform to break it", "warning")


def _types_overlap(route_events: list[str] | None, emits: set[str]) -> bool:
    if not route_events or not emits or "*" in route_events:
        return True
    return any(e in emits or (_GLOB.search(e) and any(re.fullmatch(translate(e), x) for x in emits))
               for e in route_events)


def _strong_components(starts: list[tuple[str, str]], successors: Any) -> list[list[tuple[str, str]]]:
    """Iterative Tarjan; returns components that hold a cycle (size > 1, or a node with a self edge)."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    on_stack: set[Any] = set()
    stack: list[Any] = []
    found: list[list[Any]] = []
    counter = 0
    for start in starts:
        if start in index:
            continue
        work = [(start, iter(successors(start)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(successors(nxt))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in successors(node):
                    found.append(component)
    return found


def _cycle_through(start: Any, members: set[Any], successors: Any) -> list[Any]:
    """A shortest path from ``start`` back to itself inside one component (breadth first)."""
    parents: dict[Any, Any] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in successors(node):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1] + [start]
                if nxt not in parents:
                    parents[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start]


def _describe_cycle(cycle: list[Node]) -> str:
    return " -> ".join(f"{kind} {name}" for kind, name in cycle if kind != "channel")


def _check_ingress(project: Project) -> None:
    """Push sources (the webhook listener): unsigned ones are a warning on loopback, an error beyond it."""
    from orgloop.connectors.ingress import is_loopback

    host = project.settings.runtime.ingress_host if project.settings else "127.0.0.1"
    exposed = not is_loopback(host)
    for d in project.definitions["sources"].values():
        name = _text(d, "connector")
        try:
            cls = plugins.load("sources", name) if name else None
        except (plugins.PluginError, ImportError):
            continue                                   # reported by _check_plugins
        if not getattr(cls, "push", False) or _text(d, "config", "secret"):
            continue
        if exposed:
            _error(project, d, ("connector",), f"webhook source {d.name!r} has no secret, and runtime.ingress_host "
                   f"{host!r} is beyond loopback: set config.secret (anyone could post events)")
        elif getattr(cls, "signed_by_sender", True):
            _error(project, d, ("connector",), f"webhook source {d.name!r} has no secret: it accepts unsigned "
                   "posts from any local program; set config.secret", "warning")
