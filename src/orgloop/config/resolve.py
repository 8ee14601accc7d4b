"""Turn a loaded, error-free project into the :class:`~orgloop.spec.RuntimeSpec` the runtime runs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from orgloop import plugins
from orgloop.config.loader import Project
from orgloop.errors import ConfigError
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, FleetSpec, LoggerSpec, RetrySpec, RouteSpec,
                          RuntimeSpec, SourceSpec, TransformRef, TransformSpec)
from orgloop.units import parse_duration, parse_rate

__all__ = ["to_runtime_spec"]


def to_runtime_spec(project: Project) -> RuntimeSpec:
    """The runnable form of ``project``; raises :class:`ConfigError` when the project has errors."""
    if project.errors or project.settings is None:
        raise ConfigError(f"the project has {len(project.errors)} error(s); run `orgloop validate` to see them")
    settings = project.settings
    default_poll = parse_duration(settings.defaults.poll_interval)
    return RuntimeSpec(
        sources=[SourceSpec(d.name, plugins.plugin_name(d.model.connector), dict(d.model.config),
                            poll_interval=parse_duration(d.model.poll.interval) if d.model.poll else default_poll,
                            emits=d.model.emits)
                 for d in project.sources.values()],
        actors=[ActorSpec(d.name, plugins.plugin_name(d.model.connector), dict(d.model.config),
                          concurrency=d.model.concurrency)
                for d in project.actors.values()],
        transforms=[_transform(d.model, d.file.parent) for d in project.transforms.values()],
        routes=[_route(project, d) for d in project.routes.values()],
        loggers=[LoggerSpec(d.name, plugins.plugin_name(d.model.type), dict(d.model.config))
                 for d in project.loggers.values()],
        # no module_path: checkpoints default to the workspace's data directory, never the shared project dir
        data_dir=project.data_dir, module_path=None, base_dir=project.root,
        bus=settings.runtime.bus, bus_options=dict(settings.runtime.bus_options), checkpoint=_checkpoint(project),
        control_port=settings.runtime.control_port, ingress_port=settings.runtime.ingress_port,
        ingress_host=settings.runtime.ingress_host, workspace=project.workspace, name=project.name,
        fleet=_fleet(settings.runtime.fleet))


def _fleet(f: Any) -> FleetSpec:
    return FleetSpec(lease_ttl=parse_duration(f.lease_ttl), heartbeat=parse_duration(f.heartbeat), store=f.store,
                     shared_dedup=f.shared_dedup)


def _checkpoint(project: Project) -> dict[str, Any] | None:
    """``defaults.checkpoint`` with a configured ``dir`` made per workspace (``<project>/<dir>/<workspace>``,
    or ``<dir>/<workspace>`` when absolute), so two workspaces never share checkpoints."""
    assert project.settings is not None
    configured = project.settings.defaults.checkpoint
    if configured is None:
        return None
    checkpoint = configured.model_dump(exclude_none=True)
    if "dir" in checkpoint:
        checkpoint["dir"] = str(project.root / Path(checkpoint["dir"]).expanduser() / project.workspace)
    return checkpoint


def _transform(t: Any, base: Any) -> TransformSpec:
    if t.type == "script":
        return TransformSpec(t.name, "script", "script", {**t.config, "script": t.script}, on_error=t.on_error,
                             timeout_ms=t.timeout_ms, base_dir=base)
    return TransformSpec(t.name, "package", plugins.plugin_name(t.package), dict(t.config), on_error=t.on_error,
                         timeout_ms=t.timeout_ms, base_dir=base)


def _route(project: Project, d: Any) -> RouteSpec:
    r = d.model
    dl = r.then.delivery
    delivery = DeliverySpec(
        max_rate=parse_rate(dl.max_rate) if dl.max_rate else None, queue_depth=dl.queue_depth,
        queue_policy=dl.queue_policy,
        retry=RetrySpec(max_attempts=dl.retry.max_attempts, backoff=dl.retry.backoff,
                        initial_delay=parse_duration(dl.retry.initial_delay),
                        max_delay=parse_duration(dl.retry.max_delay),
                        **({"max_retry_after": parse_duration(dl.retry.max_retry_after)}
                           if dl.retry.max_retry_after is not None else {})),
        circuit_breaker=BreakerSpec(failure_threshold=dl.circuit_breaker.failure_threshold,
                                    cooldown=parse_duration(dl.circuit_breaker.cooldown)))
    return RouteSpec(d.name, r.when.source, r.then.actor, events=r.when.events, filter=dict(r.when.filter),
                     transforms=[TransformRef(t.ref, t.on_error) for t in r.transforms],
                     config=dict(r.then.config), prompt=project.prompt_text(d), delivery=delivery)
