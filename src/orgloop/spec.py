"""The resolved shape of a pipeline that the runtime runs.

Project files (``orgloop.config``) resolve into these plain dataclasses; library users can build them
directly. Everything here is already validated and parsed (durations in seconds, rates per second).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SourceSpec", "ActorSpec", "TransformSpec", "TransformRef", "RetrySpec", "BreakerSpec",
           "DeliverySpec", "RouteSpec", "LoggerSpec", "FleetSpec", "RuntimeSpec"]


@dataclass
class SourceSpec:
    id: str
    connector: str
    config: dict[str, Any] = field(default_factory=dict)
    poll_interval: float = 300.0
    emits: list[str] | None = None


@dataclass
class ActorSpec:
    id: str
    connector: str
    config: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1


@dataclass
class TransformSpec:
    name: str
    type: str                      # "package" (a plugin such as filter/dedup) or "script"
    plugin: str                    # plugin name: filter, dedup, script, …
    config: dict[str, Any] = field(default_factory=dict)
    on_error: str = "pass"
    timeout_ms: int = 30_000
    base_dir: Path | None = None


@dataclass
class TransformRef:
    name: str
    on_error: str | None = None    # the route's override


@dataclass
class RetrySpec:
    max_attempts: int = 3
    backoff: str = "exponential"
    initial_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 300.0        # a target's Retry-After counts up to this many seconds


@dataclass
class BreakerSpec:
    failure_threshold: int = 5
    cooldown: float = 30.0


@dataclass
class DeliverySpec:
    max_rate: float | None = None            # events per second
    queue_depth: int = 1000
    queue_policy: str | None = None          # "block" | "drop_oldest"; None: block on a durable bus
    retry: RetrySpec = field(default_factory=RetrySpec)
    circuit_breaker: BreakerSpec = field(default_factory=BreakerSpec)


@dataclass
class RouteSpec:
    name: str
    source: str
    actor: str
    events: list[str] | None = None
    filter: dict[str, Any] = field(default_factory=dict)
    transforms: list[TransformRef] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    prompt: str | None = None
    delivery: DeliverySpec = field(default_factory=DeliverySpec)


@dataclass
class LoggerSpec:
    name: str
    type: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class FleetSpec:
    """How members of a fleet (a scale-out bus) share sources and state (``runtime.fleet``)."""

    lease_ttl: float = 15.0                   # seconds a source lease lasts unless renewed (every ttl/3)
    heartbeat: float = 2.0                    # seconds between membership heartbeats (a record lives 3)
    store: str | None = None                  # the shared store's URL (redis://…); default: the bus's server
    shared_dedup: bool = True                 # dedup claims and marks in the shared store


@dataclass
class RuntimeSpec:
    sources: list[SourceSpec] = field(default_factory=list)
    actors: list[ActorSpec] = field(default_factory=list)
    routes: list[RouteSpec] = field(default_factory=list)
    transforms: list[TransformSpec] = field(default_factory=list)
    loggers: list[LoggerSpec] = field(default_factory=list)
    data_dir: Path | None = None              # WAL, dead letters, checkpoints, dedup state live here
    module_path: Path | None = None           # the project directory (file checkpoints resolve here)
    base_dir: Path = field(default_factory=Path.cwd)
    bus: str = "filewal"                      # one line of config: memory | filewal | …
    bus_options: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None  # {store: lmdb|file|memory, dir}
    control_port: int | None = None           # read-only HTTP endpoint on 127.0.0.1 (off when None; 0 = any port)
    control_socket: Path | None = None        # the owner's control socket (off when None; needs data_dir)
    ingress_port: int | None = None           # webhook listener; None: ORGLOOP_PORT or 4800 (0: any free port)
    ingress_host: str = "127.0.0.1"
    workspace: str = "default"
    name: str = "orgloop"
    role: str = "all"                         # all | source | router | delivery (roles other than all: a fleet)
    member: str | None = None                 # this fleet member's id (set by --role: a new member)
    fleet: FleetSpec = field(default_factory=FleetSpec)
