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
from typing import Any

from orgloop import plugins
from orgloop.config.diagnostics import did_you_mean
from orgloop.config.loader import Definition, Project
from orgloop.config.models import EVENT_TYPES

__all__ = ["check_project"]

_GLOB = re.compile(r"[*?\[]")


def check_project(project: Project) -> Project:
    """Run every cross-file check; returns the project for chaining."""
    _check_plugins(project)
    _check_routes(project)
    _check_scripts(project)
    _check_loops(project)
    return project


def _error(project: Project, d: Definition, path: tuple[Any, ...], message: str, severity: str = "error") -> None:
    line, col = d.position(*path)
    project.report(d.file, line, col, severity, message)  # type: ignore[arg-type]


def _check_plugins(project: Project) -> None:
    installed = {kind: set(plugins.available(kind)) for kind in ("sources", "actors", "transforms", "loggers")}

    def check(kind: str, d: Definition, field: str, name: str) -> None:
        short = plugins.plugin_name(name)
        if short not in installed[kind]:
            _error(project, d, (field,), f"no {kind[:-1]} plugin {name!r} is installed"
                   + did_you_mean(short, installed[kind])
                   + f" (installed: {', '.join(sorted(installed[kind])) or 'none'})")

    for d in project.sources.values():
        check("sources", d, "connector", d.model.connector)
    for d in project.actors.values():
        check("actors", d, "connector", d.model.connector)
    for d in project.transforms.values():
        if d.model.type == "package":
            check("transforms", d, "package", d.model.package)
    for d in project.loggers.values():
        check("loggers", d, "type", d.model.type)


def _check_routes(project: Project) -> None:
    sources, actors, transforms = project.sources, project.actors, project.transforms
    known_types = set(EVENT_TYPES)
    for s in sources.values():
        known_types.update(s.model.emits or ())
    for d in project.routes.values():
        r = d.model
        src = r.when.source
        if _GLOB.search(src) or src == "*":
            pattern = re.compile(translate(src))
            if src != "*" and not any(pattern.fullmatch(s) for s in sources):
                _error(project, d, ("when", "source"), f"source pattern {src!r} matches no source", "warning")
        elif src not in sources and src not in project.broken["sources"]:
            _error(project, d, ("when", "source"), f"unknown source {src!r}" + did_you_mean(src, sources))
        for i, event_type in enumerate(r.when.events or ()):
            if event_type not in known_types and not _GLOB.search(event_type):
                _error(project, d, ("when", "events", i), f"unknown event type {event_type!r}"
                       + did_you_mean(event_type, known_types)
                       + f"; known types: {', '.join(sorted(known_types))}")
        actor = r.then.actor
        if actor not in actors and actor not in project.broken["actors"]:
            _error(project, d, ("then", "actor"), f"unknown actor {actor!r}" + did_you_mean(actor, actors))
        for i, ref in enumerate(r.transforms):
            if ref.ref not in transforms and ref.ref not in project.broken["transforms"]:
                _error(project, d, ("transforms", i, "ref"), f"unknown transform {ref.ref!r}"
                       + did_you_mean(ref.ref, transforms))
        if r.with_ is not None and r.with_.prompt_file:
            _check_prompt(project, d, r.with_.prompt_file)


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _check_prompt(project: Project, d: Definition, prompt_file: str) -> None:
    root = project.root.resolve()
    candidates = [(base / prompt_file).resolve() for base in (d.file.parent, project.root)]
    if any(not _inside(c, root) for c in candidates if c.is_file()) or all(not _inside(c, root) for c in candidates):
        _error(project, d, ("with", "prompt_file"), f"prompt_file {prompt_file!r} is outside the project directory")
        return
    if project.prompt_path(d) is None:
        rel = os.path.relpath(d.file.parent, project.root)
        _error(project, d, ("with", "prompt_file"), f"prompt_file {prompt_file!r} not found (looked in "
               f"{rel if rel != '.' else 'the project root'}{' and the project root' if rel != '.' else ''})")


def _check_scripts(project: Project) -> None:
    root = project.root.resolve()
    for d in project.transforms.values():
        if d.model.type != "script":
            continue
        path = (d.file.parent / d.model.script).resolve()
        if not _inside(path, root):
            _error(project, d, ("script",), f"script {d.model.script!r} is outside the project directory")
        elif not path.is_file():
            _error(project, d, ("script",), f"script {d.model.script!r} not found (resolved to "
                   f"{os.path.relpath(path, project.root)})")
        elif not os.access(path, os.X_OK):
            _error(project, d, ("script",), f"script {d.model.script!r} is not executable (chmod +x it)")


# ---------------------------------------------------------------------------- loops
def _feeds(actor: Definition, source: Definition, project: Project) -> bool:
    """Whether what ``actor`` does shows up as events of ``source``: both speak to the same platform
    (same connector plugin); for files, the actor appends to the very file the source reads."""
    a, s = plugins.plugin_name(actor.model.connector), plugins.plugin_name(source.model.connector)
    if a != s:
        return False
    if a == "file":
        ap, sp = actor.model.config.get("path"), source.model.config.get("path")
        return isinstance(ap, str) and isinstance(sp, str) and (project.root / ap).resolve() == (project.root / sp).resolve()
    return True


def _check_loops(project: Project) -> None:
    """Tarjan's strongly connected components on the graph route -> actor -> fed source -> routes."""
    routes, actors, sources = project.routes, project.actors, project.sources
    by_connector: dict[str, list[str]] = {}
    for sid, s in sources.items():
        by_connector.setdefault(plugins.plugin_name(s.model.connector), []).append(sid)
    fed: dict[str, list[str]] = {}
    for aid, a in actors.items():
        fed[aid] = [sid for sid in by_connector.get(plugins.plugin_name(a.model.connector), ())
                    if _feeds(a, sources[sid], project)]
    fed_sources = {sid for lst in fed.values() for sid in lst}
    if not fed_sources:
        return
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
        names = exact.get(sid, []) + exact.get("*", []) + [n for p, n in globbed if p.fullmatch(sid)]
        listening[sid] = [n for n in names if _types_overlap(routes[n].model.when.events, emits)]

    def successors(node: tuple[str, str]) -> list[tuple[str, str]]:
        kind, name = node
        if kind == "route":
            actor = routes[name].model.then.actor
            return [("actor", actor)] if actor in fed else []
        if kind == "actor":
            return [("source", s) for s in fed[name]]
        return [("route", r) for r in listening.get(name, ())]

    order = {name: i for i, name in enumerate(routes)}
    for component in _strong_components([("route", n) for n in routes], successors):
        route_nodes = [n for n in component if n[0] == "route"]
        if not route_nodes:
            continue
        first = min(route_nodes, key=lambda n: order[n[1]])
        cycle = _cycle_through(first, set(component), successors)
        d = routes[first[1]]
        _error(project, d, ("then", "actor"), "possible event loop (agent ping-pong): " + _describe_cycle(cycle)
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


def _describe_cycle(cycle: list[tuple[str, str]]) -> str:
    return " -> ".join(f"{kind} {name}" for kind, name in cycle)
