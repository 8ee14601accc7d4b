"""``orgloop test``: route one event in dry-run through the real route index, ``when.filter`` and
transforms (script transforms really run), and report what each matched route's actor would receive.

Nothing is delivered, no bus or WAL is opened, and stateful transforms keep their state in memory only
(a dedup transform sees the event for the first time).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orgloop.prompts import render_config
from orgloop.router.acks import AckTracker
from orgloop.router.router import CompiledRoute, Router
from orgloop.runtime import make_transform
from orgloop.spec import RuntimeSpec

__all__ = ["Delivery", "RouteOutcome", "dry_run"]


@dataclass
class Delivery:
    """What the actor would receive for one event: ``deliver(event, prompt, config)``."""

    event: dict[str, Any]
    prompt: str | None
    config: dict[str, Any]


@dataclass
class RouteOutcome:
    route: str
    actor: str
    deliveries: list[Delivery] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)   # transform outcomes (log entries), in order

    @property
    def dropped(self) -> bool:
        return not self.deliveries


def dry_run(spec: RuntimeSpec, event: dict[str, Any]) -> list[RouteOutcome]:
    """Every route ``event`` matches, in route order, with its transform steps and deliveries."""
    transforms = {t.name: (make_transform(t, spec.base_dir, None), t.on_error) for t in spec.transforms}
    try:
        compiled = []
        for r in spec.routes:
            chain = [(ref.name, transforms[ref.name][0], ref.on_error or transforms[ref.name][1] or "pass")
                     for ref in r.transforms]
            compiled.append(CompiledRoute(r, chain, lane=None))
        router = Router(compiled, AckTracker(lambda seqs: None))
        outcomes = []
        for route in router.match(event):
            steps: list[dict[str, Any]] = []
            out = router.apply_transforms(route, 0, event, steps) if route.transforms else [event]
            spec_r = route.spec
            outcomes.append(RouteOutcome(spec_r.name, spec_r.actor,
                                         [Delivery(ev, render_config(spec_r.prompt, ev),
                                                   render_config(spec_r.config, ev)) for ev in out],
                                         [s for s in steps if s.get("phase") != "transform.start"]))
        return outcomes
    finally:
        for instance, _policy in transforms.values():
            instance.close()
