"""Reconcile a running runtime with a plan, without a restart (``orgloop start`` on a live workspace).

What can be applied live: routes added, changed or removed (events already queued for a removed or
replaced route are still delivered by it); sources added, changed (restarted from their checkpoint) or
removed; actors added or removed; transforms added or removed. What needs a restart: a changed actor or
transform (running plug-in instances hold their config), any logger change, and a route change that would
resize or re-police an existing actor's queue (``queue_depth``/``queue_policy``). :func:`restart_reasons`
lists those; the CLI refuses to apply a plan that has any, and the runtime checks again.

The CLI builds the request (:func:`build_request`, from the resolved :class:`~orgloop.spec.RuntimeSpec`)
and ``POST``s it to ``/apply`` on the control socket; the runtime runs :func:`apply_request`.
"""
from __future__ import annotations

import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from orgloop.plan import SINGULAR, ItemChange, Plan, State
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, RetrySpec, RouteSpec, RuntimeSpec, SourceSpec,
                          TransformRef, TransformSpec)

__all__ = ["ReconcileError", "restart_reasons", "build_request", "apply_request"]

_LOCK = threading.Lock()


class ReconcileError(RuntimeError):
    """The change cannot be applied to the running runtime (a restart is needed), or the request is wrong."""


_DEFAULT_LANE: tuple[int, tuple[str, ...]] = (1000, ("default",))
_COSMETIC = frozenset({"description", "labels"})   # fields the runtime never reads


def _lane_shape(state: State, actor: str) -> tuple[int, tuple[str, ...]] | None:
    """The queue an actor's lane gets at start: the largest ``queue_depth`` of its routes, and the policies
    they ask for (the first one, in definition order, is used); None when no route targets it."""
    delivery = [r.get("then", {}).get("delivery", {}) for r in state.get("routes", {}).values()
                if r.get("then", {}).get("actor") == actor]
    if not delivery:
        return None
    policies = tuple(dict.fromkeys(d.get("queue_policy") or "default" for d in delivery))
    return max(d.get("queue_depth", 1000) for d in delivery), policies


def _needs_restart(item: ItemChange) -> bool:
    """A changed actor, transform or logger: unless only its description or labels changed."""
    return item.action != "changed" or any(f.path[0] not in _COSMETIC for f in item.fields)


def restart_reasons(plan: Plan, current: State, desired: State) -> list[str]:
    """Why this plan cannot be applied to a running runtime; empty when it can."""
    reasons = [f"{i.label} changed (running {SINGULAR[i.kind]}s keep their config)"
               for i in plan.of("actors", "changed") + plan.of("transforms", "changed") if _needs_restart(i)]
    reasons += [f"{i.label} {i.action} (loggers are set up at start)"
                for i in plan.of("loggers", "added", "changed", "removed") if _needs_restart(i)]
    for actor in sorted(current.get("actors", {}).keys() & desired.get("actors", {}).keys()):
        before = _lane_shape(current, actor) or _DEFAULT_LANE
        after = _lane_shape(desired, actor)
        if after is not None and (after[0], set(after[1])) != (before[0], set(before[1])):
            reasons.append(f"actor {actor}: its queue would change from {before[0]} events "
                           f"({', '.join(before[1])}) to {after[0]} ({', '.join(after[1])})")
    return reasons


def build_request(plan: Plan, spec: RuntimeSpec, desired: State) -> dict[str, Any]:
    """The JSON body of ``POST /apply``: per kind, full specs to add and names to remove (a changed
    item is removed and added again), plus the state the runtime runs afterwards."""
    by_name: dict[str, dict[str, Any]] = {"sources": {s.id: s for s in spec.sources},
                                          "actors": {a.id: a for a in spec.actors},
                                          "routes": {r.name: r for r in spec.routes},
                                          "transforms": {t.name: t for t in spec.transforms}}
    body: dict[str, Any] = {"state": desired}
    for kind, specs in by_name.items():
        items = [i for i in plan.of(kind, "added", "changed", "removed") if kind in ("routes", "sources")
                 or _needs_restart(i)]          # description/labels-only changes of plug-ins: nothing to do
        body[kind] = {"add": [asdict(specs[i.name]) for i in items if i.action != "removed"],
                      "remove": [i.name for i in items if i.action != "added"]}
    body["lanes"] = {}
    for i in plan.of("actors", "added"):
        depth, policies = _lane_shape(desired, i.name) or _DEFAULT_LANE
        body["lanes"][i.name] = [depth, policies[0]]
    return body


# --------------------------------------------------------------------------- runtime side
def _route(d: dict[str, Any]) -> RouteSpec:
    dl = dict(d.get("delivery") or {})
    delivery = DeliverySpec(**{k: v for k, v in dl.items() if k not in ("retry", "circuit_breaker")},
                            retry=RetrySpec(**dl.get("retry", {})),
                            circuit_breaker=BreakerSpec(**dl.get("circuit_breaker", {})))
    return RouteSpec(**{**d, "transforms": [TransformRef(**t) for t in d.get("transforms", [])],
                        "delivery": delivery})


def _transform(d: dict[str, Any]) -> TransformSpec:
    return TransformSpec(**{**d, "base_dir": Path(d["base_dir"]) if d.get("base_dir") else None})


_DECODE = {"sources": lambda d: SourceSpec(**d), "actors": lambda d: ActorSpec(**d), "routes": _route,
           "transforms": _transform}


def _decode(body: Any) -> dict[str, tuple[list[Any], list[str]]]:
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    out = {}
    for kind, decode in _DECODE.items():
        part = body.get(kind) or {}
        try:
            out[kind] = ([decode(d) for d in part.get("add", [])], [str(n) for n in part.get("remove", [])])
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"{kind}: {exc}") from None
    return out


def apply_request(runtime: Any, body: Any) -> dict[str, Any]:
    """Apply a :func:`build_request` body to ``runtime``; returns what was done, per kind."""
    changes = _decode(body)
    with _LOCK:
        _check(runtime, changes)
        (add_sources, rm_sources), (add_actors, rm_actors) = changes["sources"], changes["actors"]
        (add_routes, rm_routes), (add_transforms, rm_transforms) = changes["routes"], changes["transforms"]
        lanes = body.get("lanes") or {}
        for a in add_actors:
            depth, policy = lanes.get(a.id) or (1000, "default")
            runtime.add_actor(a, int(depth), None if policy == "default" else str(policy))
        runtime.apply_transforms(add_transforms, [])
        if rm_sources:
            runtime.apply_sources([], rm_sources)
        runtime.apply_routes(add_routes, rm_routes)
        for actor_id in rm_actors:
            runtime.remove_actor(actor_id)
        runtime.apply_transforms([], rm_transforms)
        if add_sources:
            runtime.apply_sources(add_sources, [])
        if isinstance(body.get("state"), dict):
            runtime.applied_state = body["state"]
    return {kind: {"added": [getattr(s, "id", None) or s.name for s in add], "removed": rm}
            for kind, (add, rm) in changes.items()}


def _check(runtime: Any, changes: dict[str, tuple[list[Any], list[str]]]) -> None:
    """Refuse before touching anything: unknown names, or changes that need a restart."""
    known = {"sources": {s.id for s in runtime.spec.sources}, "actors": set(runtime.lanes),
             "routes": set(runtime.router.routes), "transforms": set(runtime.transforms)}
    problems = []
    for kind, (add, remove) in changes.items():
        missing = sorted(set(remove) - known[kind])
        if missing:
            problems.append(f"no {SINGULAR[kind]} {', '.join(missing)} is running")
        names = {getattr(s, "id", None) or s.name for s in add}
        if kind in ("actors", "transforms") and names & set(remove):
            problems.append(f"changing a running {SINGULAR[kind]} ({', '.join(sorted(names & set(remove)))}) "
                            "needs a restart")
        clash = sorted((names & known[kind]) - set(remove))
        if clash:
            problems.append(f"{SINGULAR[kind]} {', '.join(clash)} is already running")
    if problems:
        raise ReconcileError("; ".join(problems))
