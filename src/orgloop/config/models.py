"""The schema of every project file kind, as pydantic models.

The loader validates each file with these models, and ``orgloop schema`` publishes the JSON Schema
generated from them, so editors and the loader never disagree. Models are strict (a number where a
string is expected is an error, not a silent conversion) and reject unknown keys. Durations and rates
stay as written (``"30s"``, ``"100/s"``) after a strict parse check; the loader converts them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from orgloop.units import DURATION_PATTERN, RATE_PATTERN, parse_duration, parse_rate

__all__ = ["API_VERSION", "EVENT_TYPES", "ProjectFile", "ConnectorGroup", "RouteGroup", "TransformGroup",
           "LoggerGroup", "WorkspaceFile", "GROUP_MODELS", "Source", "Actor", "Route", "Transform", "Logger"]

API_VERSION = "orgloop/v1alpha1"
EVENT_TYPES = ("resource.changed", "actor.stopped", "message.received")


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _rate(text: str) -> str:
    parse_rate(text)
    return text


# The pattern is for the published JSON Schema only; the loader checks with the parser (better messages).
Duration = Annotated[str, AfterValidator(_duration), Field(description="a duration: 500ms, 30s, 5m, 1h, 7d",
                                                           json_schema_extra={"pattern": DURATION_PATTERN})]
Rate = Annotated[str, AfterValidator(_rate), Field(description="a rate: 100/s, 10/min, 5/h",
                                                   json_schema_extra={"pattern": RATE_PATTERN})]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$",
                            description="an id: letters, digits and _ . : @ / - (max 128)")]
OnError = Literal["pass", "drop", "halt"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Metadata(_Model):
    name: Name
    description: str | None = None


class GroupMetadata(_Model):
    name: str | None = None
    description: str | None = None


class CheckpointDefaults(_Model):
    store: Literal["lmdb", "file", "memory"] | None = None
    dir: str | None = None


class Defaults(_Model):
    poll_interval: Duration = "5m"
    event_retention: Duration | None = None
    log_level: Literal["debug", "info", "warn", "warning", "error"] | None = None
    checkpoint: CheckpointDefaults | None = None


class FleetSettings(_Model):
    """How the members of a fleet (a scale-out bus) share sources and state."""

    lease_ttl: Duration = Field("15s", description="how long a source lease lasts unless renewed (every third)")
    heartbeat: Duration = Field("2s", description="time between a member's heartbeats (its record lives three)")
    store: str | None = Field(None, description="the shared store (redis://...) for leases, checkpoints, dedup "
                                                "and members; default the bus's own server (needed for kafka)")
    shared_dedup: bool = Field(True, description="keep dedup claims and marks in the shared store")


class RuntimeSettings(_Model):
    """orgloop's additions: which bus, where data lives, the control endpoint."""

    bus: str = Field("filewal", description="memory | filewal | an installed bus plugin (nats, redis, kafka)")
    bus_options: dict[str, Any] = Field(default_factory=dict)
    data_dir: str | None = Field(None, description="each workspace keeps its data in <data_dir>/<workspace>; "
                                                   "default $ORGLOOP_HOME/data/<project>/<workspace>")
    control_port: int | None = Field(None, ge=1, le=65535, description="read-only HTTP endpoint on 127.0.0.1 "
                                                                        "(/healthz, /metrics, /status)")
    ingress_port: int | None = Field(None, ge=1, le=65535, description="webhook listener port (default 4800; "
                                                                       "ORGLOOP_PORT wins when set)")
    ingress_host: str = Field("127.0.0.1", description="webhook listener address; beyond loopback every "
                                                       "webhook source needs a secret")
    fleet: FleetSettings = Field(default_factory=FleetSettings)


class Poll(_Model):
    interval: Duration


class Source(_Model):
    id: Name
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    connector: str
    config: dict[str, Any] = Field(default_factory=dict)
    poll: Poll | None = None
    emits: list[str] | None = None


class Actor(_Model):
    id: Name
    description: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    connector: str
    config: dict[str, Any] = Field(default_factory=dict)
    concurrency: int = Field(1, ge=1, le=1024, description="delivery worker threads (orgloop)")


class ConnectorGroup(_Model):
    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["ConnectorGroup"]
    metadata: GroupMetadata | None = None
    sources: list[Source] = Field(default_factory=list)
    actors: list[Actor] = Field(default_factory=list)


class When(_Model):
    source: str
    events: list[str] | None = None
    filter: dict[str, Any] = Field(default_factory=dict)


class TransformRef(_Model):
    ref: str
    on_error: OnError | None = None


class Retry(_Model):
    max_attempts: int = Field(3, ge=1, le=1000)
    backoff: Literal["exponential", "linear", "fixed"] = "exponential"
    initial_delay: Duration = "1s"
    max_delay: Duration = "60s"
    # unset: 5m (None keeps the plan state of projects that do not set it as it was)
    max_retry_after: Duration | None = Field(None, description="the longest wait a target's Retry-After may ask "
                                                               "for (default 5m)")


class CircuitBreaker(_Model):
    failure_threshold: int = Field(5, ge=1)
    cooldown: Duration = "30s"


class Delivery(_Model):
    max_rate: Rate | None = None
    queue_depth: int = Field(1000, ge=1, le=10_000_000)
    # unset: "block" on a durable bus (the log is the buffer), "drop_oldest" on the memory bus
    queue_policy: Literal["drop_oldest", "block"] | None = None
    retry: Retry = Field(default_factory=Retry)
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)


class Then(_Model):
    actor: str
    config: dict[str, Any] = Field(default_factory=dict)
    delivery: Delivery = Field(default_factory=Delivery)


class With(_Model):
    prompt_file: str | None = None


class Route(_Model):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: Name
    description: str | None = None
    when: When
    transforms: list[TransformRef] = Field(default_factory=list)
    then: Then
    with_: With | None = Field(None, alias="with")


class RouteGroup(_Model):
    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["RouteGroup"]
    metadata: GroupMetadata | None = None
    routes: list[Route] = Field(default_factory=list)


class Transform(_Model):
    name: Name
    description: str | None = None
    type: Literal["script", "package"]
    script: str | None = None
    package: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    timeout_ms: int = Field(30_000, ge=1)
    on_error: OnError = "pass"

    @model_validator(mode="after")
    def _needs_target(self) -> "Transform":
        if self.type == "script" and not self.script:
            raise ValueError("a script transform needs 'script' (a path to an executable)")
        if self.type == "package" and not self.package:
            raise ValueError("a package transform needs 'package' (e.g. '@orgloop/transform-dedup')")
        return self


class TransformGroup(_Model):
    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["TransformGroup"]
    metadata: GroupMetadata | None = None
    transforms: list[Transform] = Field(default_factory=list)


class Logger(_Model):
    name: Name
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class LoggerGroup(_Model):
    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["LoggerGroup"]
    metadata: GroupMetadata | None = None
    loggers: list[Logger] = Field(default_factory=list)


def _file_or_inline(value: Any) -> str:
    return "inline" if isinstance(value, dict) else "file"


def _file_or(item: type[BaseModel]) -> Any:
    """A list entry of orgloop.yaml: a path (or glob) to a group file, or an item written inline."""
    return Annotated[Union[Annotated[str, Tag("file")], Annotated[item, Tag("inline")]],
                     Discriminator(_file_or_inline)]


class ProjectFile(_Model):
    """``orgloop.yaml``. Sources, actors, routes, transforms and loggers may be written inline here (as
    published OrgLoop examples do) as well as in the group files it lists."""

    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["Project"]
    metadata: Metadata
    defaults: Defaults = Field(default_factory=Defaults)
    connectors: list[str] = Field(default_factory=list, description="ConnectorGroup files (paths or globs)")
    sources: list[Source] = Field(default_factory=list, description="sources written inline")
    actors: list[Actor] = Field(default_factory=list, description="actors written inline")
    routes: list[Route] = Field(default_factory=list, description="routes written inline")
    transforms: list[_file_or(Transform)] = Field(  # type: ignore[valid-type]
        default_factory=list, description="TransformGroup files (paths or globs) or transforms written inline")
    loggers: list[_file_or(Logger)] = Field(  # type: ignore[valid-type]
        default_factory=list, description="LoggerGroup files (paths or globs) or loggers written inline")
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)


class WorkspaceFile(_Model):
    """``workspaces/<name>.yaml``: variables and overrides deep-merged over the base project."""

    apiVersion: Literal["orgloop/v1alpha1"]
    kind: Literal["Workspace"]
    metadata: GroupMetadata | None = None
    variables: dict[str, str | int | float | bool] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)
    runtime: dict[str, Any] = Field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides by source id")
    actors: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides by actor id")
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides by route name")
    transforms: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides by name")
    loggers: dict[str, dict[str, Any]] = Field(default_factory=dict, description="overrides by name")


GROUP_MODELS: dict[str, type[BaseModel]] = {
    "Project": ProjectFile, "ConnectorGroup": ConnectorGroup, "RouteGroup": RouteGroup,
    "TransformGroup": TransformGroup, "LoggerGroup": LoggerGroup, "Workspace": WorkspaceFile,
}
