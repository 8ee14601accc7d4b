"""The Tier-1 runtime: wires a :class:`~orgloop.spec.RuntimeSpec` into running threads.

::

    source threads --publish_many--> bus (WAL, durable) --dispatch thread--> Router
        ^ checkpoint after durable                          | index match, transforms
                                                            v
                                       ActorLane queues --> delivery workers --> actor.deliver
                                                            | each done -> AckTracker -> bus.ack_many

Use it as a library (``Runtime(spec).start()`` ... ``stop()``) or through ``orgloop start``.

**In a fleet** (a scale-out bus, :mod:`orgloop.fleet`) a runtime is one member: ``spec.role`` says which
part of the pipeline it runs (``source``: pollers under leases; ``router``: matching and transforms,
handing delivery records to the ``deliveries`` stream; ``delivery``: the actor lanes, fed from that
stream; ``all``: everything), sources poll only under their lease with checkpoints in the shared store,
dedup state is shared, and the member heartbeats its record.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from orgloop import plugins
from orgloop.bus import bus_namespace, open_bus
from orgloop.control.tap import TapHub
from orgloop.delivery.lane import ActorLane
from orgloop.event import EventError, check_encodable
from orgloop.fleet import DELIVERIES, ROLES, SCALE_OUT_BUSES
from orgloop.router.acks import AckTracker
from orgloop.router.router import CompiledRoute, Router
from orgloop.spec import ActorSpec, RouteSpec, RuntimeSpec, SourceSpec, TransformSpec

if TYPE_CHECKING:
    from orgloop.delivery.dlq import DeadLetterStore

__all__ = ["Runtime", "make_transform"]

log = logging.getLogger("orgloop.runtime")


def make_transform(t: TransformSpec, base_dir: Path, state_dir: Path | None) -> Any:
    """Instantiate the plugin of one transform definition."""
    config = dict(t.config)
    if t.type == "script":
        config.setdefault("timeout_ms", t.timeout_ms)
    return plugins.create("transforms", "script" if t.type == "script" else t.plugin, t.name, config,
                          base_dir=t.base_dir or base_dir, state_dir=state_dir)


class Runtime:
    """One running pipeline. ``start()`` returns once every thread runs; ``stop()`` shuts down cleanly."""

    def __init__(self, spec: RuntimeSpec, *, max_poll: int = 1000) -> None:
        self.spec = spec
        self.max_poll = max_poll
        self._stop = threading.Event()
        self._source_threads: dict[str, tuple[threading.Thread, threading.Event, Any]] = {}
        self._started = False
        self._control: Any = None   # the read-only TCP endpoint (orgloop.control.http) while it is on
        self._socket: Any = None    # the owner's control socket (orgloop.control.server) while it is on
        self.taps = TapHub()        # orgloop tap's watchers; the router offers them each batch while any exist
        # run_until_signal's (stopping, wake) events while it runs: a stop request (POST /stop) sets them
        self._signal_loop: tuple[threading.Event, threading.Event] | None = None
        self.source_events: dict[str, int] = {}
        self._ingress: Any = None   # the shared webhook listener, once a push source is mounted
        self._push_sources: dict[str, Any] = {}
        self.started_at: float | None = None
        self.events_published = 0
        self.source_errors = 0
        self._memory_dead_letters: list[dict[str, Any]] = []
        self.dlq: DeadLetterStore | None = None
        self.applied_state: dict[str, Any] | None = None   # the plan state this runtime runs (orgloop start)
        self.fleet_store: Any = None   # the fleet's shared store (orgloop.fleet.FleetStore) on a scale-out bus
        self.member: str | None = None
        self.membership: Any = None
        self.leases: dict[str, Any] = {}
        self.out_bus: Any = None       # a router's deliveries stream
        self.intake: Any = None        # a delivery member's DeliveryIntake

    # ------------------------------------------------------------------ wiring
    def _data(self, *parts: str) -> Path | None:
        if self.spec.data_dir is None:
            return None
        path = Path(self.spec.data_dir).joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _namespace(self) -> str:
        from orgloop.fleet.view import fleet_namespace

        return fleet_namespace(self.spec.bus_options, self.spec.name, self.spec.workspace)

    def _open_bus(self, stream: str = "events"):
        """Open the bus: its ``events`` stream, or a fleet's ``deliveries`` stream (always read by the consumer
        group ``delivery``); a member started with --role reads as a consumer of its own (its member id)."""
        opts = dict(self.spec.bus_options)
        if self.fleet_store is not None and stream != "events":
            opts["stream"] = stream
            opts["consumer" if self.spec.bus == "nats" else "group"] = "delivery"
        if self.spec.member is not None and self.spec.bus == "redis":
            opts["consumer"] = self.spec.member
        if self.spec.bus == "filewal":
            wal_dir = self._data("wal")
            if wal_dir is None:
                raise ValueError("the filewal bus needs a data directory (spec.data_dir)")
            opts.setdefault("path", wal_dir)
        model = plugins.config_model(plugins.load("buses", self.spec.bus))
        if model is not None and "namespace" in model.model_fields:
            # Fleet members meet in the bus's server under the project's name and workspace
            # (decisions.md "Identity"); runtime.namespace in the project overrides the name part.
            opts.setdefault("namespace", bus_namespace(self.spec.name, self.spec.workspace))
        return open_bus(self.spec.bus, **opts)

    def _open_dead_letters(self):
        path = self._data("dlq")
        if path is None:
            log.warning("no data directory: dead letters are kept in memory only")
            return None
        from orgloop.delivery.dlq import DeadLetterStore

        return DeadLetterStore(path)

    def _dead_letter(self, entries: list[dict[str, Any]]) -> None:
        """Store dead letters durably; raises if they cannot be written (the lane retries, health is red).
        A store whose log failed refuses writes until reopened, so it is reopened first."""
        if self.dlq is None:
            self._memory_dead_letters.extend(entries)
            return
        with self._dlq_lock:
            if self.dlq.wal.failed:
                self._reopen_dead_letters()
            self.dlq.add_many(entries)

    def _reopen_dead_letters(self) -> None:
        from orgloop.delivery.dlq import DeadLetterStore

        assert self.dlq is not None
        path = self.dlq.path
        try:
            self.dlq.close()
        except Exception as exc:   # it failed already; what matters is opening it again
            log.debug("closing the failed dead-letter store: %s", exc)
        self.dlq = DeadLetterStore(path)

    def replay_dead_letters(self, ids: list[int] | None = None) -> list[int]:
        """Replay dead letters (all, or ``ids``) on the running pipeline: each goes to its route only, as it
        was recorded (no transforms). For the control socket; returns the ids replayed. The store's lock is
        not held while publishing: the bus may wait for the router, which may be writing dead letters."""
        if self.dlq is None:
            raise RuntimeError("this runtime has no data directory, so no dead-letter store")
        return self.dlq.replay(self.events_bus.publish_many, ids)

    def _make_transforms(self) -> dict[str, tuple[Any, str]]:
        return {t.name: self._make_transform(t) for t in self.spec.transforms}

    def _make_transform(self, t: TransformSpec) -> tuple[Any, str]:
        return make_transform(t, self.spec.base_dir, self._data("state", "transforms", t.name)), t.on_error

    def _queue_policy(self, policy: str | None) -> str:
        """A route's queue policy; unset means ``block`` on a durable bus (the log is the buffer) and
        ``drop_oldest`` on the memory bus."""
        return policy or ("block" if self.bus.durable else "drop_oldest")

    def _make_lane(self, a: ActorSpec, depth: int, policy: str | None) -> ActorLane:
        actor = plugins.create("actors", a.connector, a.id, a.config, base_dir=self.spec.base_dir)
        self.actors[a.id] = actor
        lane = self.lanes[a.id] = ActorLane(a.id, actor, depth=depth, policy=self._queue_policy(policy),
                                            concurrency=a.concurrency, tracker=self.tracker,
                                            dead_letter=self._dead_letter, emit=self.emit,
                                            publish=partial(self.events_bus.publish_many, wait=False))
        lane.on_room = self.bus.credit_available
        return lane

    def _open_fleet(self) -> None:
        """On a scale-out bus: open the fleet's shared store and this member's heartbeat."""
        spec = self.spec
        if spec.role not in ROLES:
            raise ValueError(f"unknown role {spec.role!r} (one of {', '.join(ROLES)})")
        if spec.bus not in SCALE_OUT_BUSES:
            if spec.role != "all":
                raise ValueError(f"role {spec.role!r} needs a scale-out bus ({', '.join(SCALE_OUT_BUSES)}); "
                                 f"the {spec.bus} bus runs the whole pipeline in one process")
            return
        from orgloop.fleet import open_store
        from orgloop.fleet.membership import Membership, new_member_id

        self.member = spec.member or new_member_id()
        self.fleet_store = open_store(spec.bus, spec.bus_options, self._namespace(), spec.fleet.store)
        self.membership = Membership(self.fleet_store, self.member, spec.role, spec.fleet.heartbeat,
                                     extra=lambda: {"healthy": self.healthy()[0] if self._started else True})

    def _compile_route(self, r: RouteSpec) -> CompiledRoute:
        lane = self.lanes.get(r.actor) or self._forward.get(r.actor)
        if lane is None:
            raise ValueError(f"route {r.name!r} names unknown actor {r.actor!r}")
        chain = []
        # a delivery member gets events the router already transformed
        for ref in (r.transforms if self.spec.role != "delivery" else ()):
            if ref.name not in self.transforms:
                raise ValueError(f"route {r.name!r} names unknown transform {ref.name!r}")
            instance, default_policy = self.transforms[ref.name]
            chain.append((ref.name, instance, ref.on_error or default_policy or "pass"))
        policy = lane.policy_for(r.name, r.delivery, r.config, r.prompt)
        return CompiledRoute(r, chain, lane, policy)

    def start(self) -> "Runtime":
        """Open the bus and stores, build the pipeline, start every thread."""
        if self._started:
            raise RuntimeError("runtime already started")
        spec = self.spec
        self._open_listeners()          # first: a taken port or a second runtime fails before anything runs
        try:
            self._start_pipeline()
        except BaseException:
            self._abort_start()
            raise
        self._started = True
        self.started_at = time.time()
        for listener in (self._socket, self._control):
            if listener is not None:
                listener.start()
        log.info("runtime started: %d sources, %d routes, %d actors, bus=%s", len(spec.sources), len(spec.routes),
                 len(spec.actors), spec.bus)
        return self

    def _open_listeners(self) -> None:
        spec = self.spec
        if spec.control_socket is not None:
            if spec.data_dir is None:
                raise ValueError("the control socket needs a data directory (spec.data_dir)")
            from orgloop.control.server import OwnerServer

            self._socket = OwnerServer(self, Path(spec.control_socket), Path(spec.data_dir))
        if spec.control_port is not None:
            from orgloop.control.http import ReadOnlyServer

            try:
                self._control = ReadOnlyServer(self, spec.control_port)
            except BaseException:
                self._close_listeners()
                raise

    def _abort_start(self) -> None:
        """Undo a start that failed partway: stop the threads it started and close what it opened, in the
        order :meth:`stop` does, so that the data directory (the WAL's lock) can be opened again at once and
        no thread is left behind. Each step runs even if an earlier one fails; failures are logged."""
        self._stop.set()
        for _t, stop, _src in self._source_threads.values():
            stop.set()
        for t, _stop, _src in self._source_threads.values():
            t.join(timeout=2.0)
        parts = vars(self)                      # what the failed start got to (nothing else is set)
        steps: list[Callable[[], object]] = []
        if self._ingress is not None:
            steps.append(self._ingress.stop)
        if parts.get("_subscription") is not None:
            steps.append(parts["_subscription"].cancel)
        if parts.get("router") is not None:
            steps.append(parts["router"].close)
        steps += [partial(lane.stop, timeout=2.0) for lane in parts.get("lanes", {}).values()]
        steps += self._closing_steps()
        if parts.get("hub") is not None:
            steps.append(parts["hub"].close)            # closes the loggers too
        else:
            steps += [lg.close for lg in parts.get("loggers", [])]
        for step in steps:
            try:
                step()
            except Exception:   # noqa: BLE001  (the start's own error is what the caller sees)
                log.exception("cleaning up after a failed start: %r failed", step)

    def _closing_steps(self) -> list[Callable[[], object]]:
        """Closing what the pipeline opened, in order, once its threads have stopped (the loggers' hub
        comes after, see :meth:`stop`). Parts a failed start never opened are left out."""
        parts = vars(self)
        steps: list[Callable[[], object]] = [self._close_listeners]
        steps += [bus.close for bus in self._buses()]
        if self.dlq is not None:
            steps.append(self.dlq.close)
        steps += [inst.close for inst, _policy in parts.get("transforms", {}).values()]
        steps += [src.close for _t, _stop, src in self._source_threads.values()]
        steps += [src.close for src in self._push_sources.values()]
        steps += [actor.close for actor in parts.get("actors", {}).values()]
        if parts.get("checkpoints") is not None:
            steps.append(parts["checkpoints"].close)
        if self.membership is not None:
            steps.append(self.membership.stop)
        if self.fleet_store is not None:
            steps.append(self.fleet_store.close)
        return steps

    def _close_listeners(self) -> None:
        self.taps.close()
        for listener in (self._socket, self._control):
            if listener is not None:
                listener.stop()
        self._socket = self._control = None

    def _start_pipeline(self) -> None:
        spec = self.spec
        from orgloop.checkpoint import resolve_checkpoint_store
        from orgloop.loggers.hub import LogHub

        self.loggers = [plugins.create("loggers", lg.type, lg.name, lg.config, base_dir=spec.base_dir)
                        for lg in spec.loggers]
        self.hub = LogHub(self.loggers, spec.workspace) if self.loggers else None
        emit = self.hub.emit if self.hub else None
        self.emit = emit
        self.checkpoints = resolve_checkpoint_store(spec.checkpoint, module_path=spec.module_path,
                                                    data_dir=spec.data_dir)
        role = spec.role
        self._open_fleet()
        self.bus = self._open_bus(DELIVERIES if role == "delivery" else "events")   # the stream this member reads
        self.events_bus = self.bus if role != "delivery" else self._open_bus("events")
        if role == "router":
            self.out_bus = self._open_bus(DELIVERIES)
        self.dlq = self._open_dead_letters()
        self._dlq_lock = threading.Lock()
        self.tracker = AckTracker(self.bus.ack_many)
        self.transforms = self._make_transforms() if role in ("all", "router") else {}
        if self.fleet_store is not None and spec.fleet.shared_dedup:
            for instance, _policy in self.transforms.values():
                if hasattr(instance, "share"):
                    instance.share(self.fleet_store)
        depth: dict[str, int] = {}
        policy: dict[str, str | None] = {}
        for r in spec.routes:
            depth[r.actor] = max(depth.get(r.actor, 0), r.delivery.queue_depth)
            policy.setdefault(r.actor, r.delivery.queue_policy)
        self.actors: dict[str, Any] = {}
        self.lanes: dict[str, ActorLane] = {}
        self._forward: dict[str, Any] = {}
        if role in ("all", "delivery"):
            for a in spec.actors:
                self._make_lane(a, depth.get(a.id, 1000), policy.get(a.id))
        elif role == "router":
            from orgloop.fleet.roles import ForwardLane

            out = partial(self.out_bus.publish_many, wait=False)
            self._forward = {a.id: ForwardLane(a.id, out, self.tracker, self._dead_letter, self._stop.is_set)
                             for a in spec.actors}
        routes = [self._compile_route(r) for r in spec.routes] if role != "source" else []
        self.router = Router(routes, self.tracker, emit, self._dead_letter)
        self.router.tap = self.taps
        self.router.bus_credit = self.bus.credit_available
        if self.hub:
            self.hub.start()
            self.hub.emit([{"phase": "runtime.start", "metadata": {"routes": len(spec.routes), "bus": spec.bus,
                                                                   "role": role}}])
        for lane in self.lanes.values():
            lane.start()
        self._subscription = None
        if role == "delivery":
            from orgloop.fleet.roles import DeliveryIntake

            self.intake = DeliveryIntake(self.router.routes, self.tracker, self._dead_letter, self.bus.delivery_count)
            self._subscription = self.bus.subscribe(None, self.intake.handle, credit=self.router.credit)
        elif role != "source":
            self._subscription = self.bus.subscribe(None, self.router.handle, credit=self.router.credit)
        if role in ("all", "source"):
            for s in spec.sources:
                self._start_source(s)
        if self.membership is not None:
            self.membership.start()
        self._flusher = threading.Thread(target=self._flush_loop, name="orgloop-ack-flusher", daemon=True)
        self._flusher.start()

    # ------------------------------------------------------------------ sources
    def _start_source(self, s: SourceSpec) -> None:
        source = plugins.create("sources", s.connector, s.id, s.config, base_dir=self.spec.base_dir)
        if getattr(source, "push", False):     # webhook-style: mounted on the shared ingress listener
            self._ingress_listener().mount(source)
            self._push_sources[s.id] = source
            return
        stop = threading.Event()
        loop = self._source_loop if self.fleet_store is None else self._leased_source_loop
        t = threading.Thread(target=loop, args=(s, source, stop), name=f"orgloop-source-{s.id}", daemon=True)
        self._source_threads[s.id] = (t, stop, source)
        t.start()

    def _ingress_listener(self) -> Any:
        if self._ingress is None:
            from orgloop.connectors.ingress import Ingress, ingress_address

            host, port = ingress_address(self.spec.ingress_host, self.spec.ingress_port)
            self._ingress = Ingress(self._publish_pushed, host=host, port=port).start()
        return self._ingress

    def _publish_pushed(self, source_id: str, events: list[dict[str, Any]]) -> None:
        """Called on an ingress request thread: returns once the events are durable (then the sender gets 200)."""
        self.events_bus.publish_many(events)
        self.events_published += len(events)
        self.source_events[source_id] = self.source_events.get(source_id, 0) + len(events)
        if self.emit:
            self.emit([{"phase": "source.emit", "source": source_id, "event_id": e.get("id"),
                        "trace_id": e.get("trace_id"), "event_type": e.get("type")} for e in events])

    def _source_loop(self, s: SourceSpec, source: Any, stop: threading.Event) -> None:
        checkpoint = self.checkpoints.get(s.id)
        backoff = [1.0]
        while not stop.is_set() and not self._stop.is_set():
            polled = self._poll(s, source, checkpoint, stop, backoff)
            if polled is None:
                continue
            events, new_cp = polled
            if events and not self._publish_polled(s, events, checkpoint, stop, backoff):
                continue
            if new_cp is not None and new_cp != checkpoint:
                self.checkpoints.set(s.id, new_cp)
                checkpoint = new_cp
            if not events:
                stop.wait(self._pace(s, source))

    def _leased_source_loop(self, s: SourceSpec, source: Any, stop: threading.Event) -> None:
        """A source in a fleet: it polls only while this member holds its lease (with half the TTL left),
        resumes from the shared checkpoint whenever it takes the lease, drops a poll that outlasted the
        lease, and writes checkpoints with a compare-and-set on its epoch (see :mod:`orgloop.fleet.lease`)."""
        from orgloop.fleet.lease import SourceLease
        from orgloop.fleet.store import StoreError

        store, member = self.fleet_store, str(self.member)
        lease = self.leases[s.id] = SourceLease(store, s.id, member, self.spec.fleet.lease_ttl)
        epoch, checkpoint = 0, None
        backoff = [1.0]
        try:
            while not stop.is_set() and not self._stop.is_set():
                if not lease.keep():
                    self._wait_keeping(stop, lease.ttl / 6, lease)
                    continue
                if lease.epoch != epoch:
                    try:
                        checkpoint = store.checkpoint(s.id)
                    except StoreError as exc:
                        log.warning("source %s: cannot read its checkpoint: %s", s.id, exc)
                        stop.wait(1.0)
                        continue
                    epoch = lease.epoch
                    self._emit_entry("source.lease", s.id, {"member": member, "epoch": epoch, "checkpoint": checkpoint})
                started = time.time()
                polled = self._poll(s, source, checkpoint, stop, backoff)
                ended = time.time()
                kept = lease.valid()
                self._emit_entry("source.poll", s.id, {"member": member, "epoch": epoch, "started": started,
                                                       "ended": ended, "published": kept and polled is not None,
                                                       "events": len(polled[0]) if polled else 0})
                if polled is None:
                    continue
                if not kept:
                    log.warning("source %s: the poll outlasted the lease; its events are not published", s.id)
                    continue
                events, new_cp = polled
                if events and not self._publish_polled(s, events, checkpoint, stop, backoff):
                    continue
                if new_cp is not None and new_cp != checkpoint:
                    try:
                        written = store.put_checkpoint(s.id, new_cp, member, epoch)
                    except StoreError as exc:
                        log.warning("source %s: cannot store its checkpoint: %s", s.id, exc)
                        written = False
                    if not written:
                        log.warning("source %s: checkpoint refused (the lease of epoch %d is no longer this "
                                    "member's); polling stops until it holds the lease again", s.id, epoch)
                        lease.drop()
                        epoch = 0
                        continue
                    checkpoint = new_cp
                if not events:
                    self._wait_keeping(stop, self._pace(s, source), lease)
        finally:
            lease.release()

    @staticmethod
    def _wait_keeping(stop: threading.Event, seconds: float, lease: Any) -> None:
        """Wait ``seconds`` (or until stopped), renewing ``lease`` as it falls due."""
        end = time.monotonic() + seconds
        while not stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, lease.ttl / 4))
            lease.keep()

    @staticmethod
    def _pace(s: SourceSpec, source: Any) -> float:
        pace = getattr(source, "poll_delay", None)    # optional: a source may set its own pace
        return pace(s.poll_interval) if pace else s.poll_interval

    def _emit_entry(self, phase: str, source_id: str, metadata: dict[str, Any]) -> None:
        if self.emit:
            self.emit([{"phase": phase, "source": source_id, "metadata": metadata}])

    def _poll(self, s: SourceSpec, source: Any, checkpoint: str | None, stop: threading.Event,
              backoff: list[float]) -> tuple[list[dict[str, Any]], str | None] | None:
        """One poll; None after a failure (logged, counted, waited for with a growing ``backoff``)."""
        try:
            polled = source.poll(checkpoint, self.max_poll)
        except Exception as exc:
            self.source_errors += 1
            log.warning("source %s failed to poll: %s (retrying in %.0fs)", s.id, exc, backoff[0])
            if self.emit:
                self.emit([{"phase": "source.retry", "source": s.id, "error": str(exc)}])
            stop.wait(backoff[0])
            backoff[0] = min(backoff[0] * 2, 60.0)
            return None
        backoff[0] = 1.0
        return polled

    def _publish_polled(self, s: SourceSpec, events: list[dict[str, Any]], checkpoint: str | None,
                        stop: threading.Event, backoff: list[float]) -> bool:
        """Publish a poll's events durably (refused ones are logged and skipped); False when that failed
        and the checkpoint must stay."""
        try:
            self.events_bus.publish_many(events)          # durable before the checkpoint moves
        except Exception as exc:
            kept = self._without_poison(s.id, events)
            try:
                if kept is None:
                    raise exc
                self.events_bus.publish_many(kept)
                events = kept
            except Exception as exc2:
                log.error("source %s: publishing failed, its checkpoint stays at %r: %s", s.id, checkpoint, exc2)
                self.source_errors += 1
                stop.wait(backoff[0])
                return False
        self.events_published += len(events)
        self.source_events[s.id] = self.source_events.get(s.id, 0) + len(events)
        if self.emit:
            self.emit([{"phase": "source.emit", "source": s.id, "event_id": e.get("id"),
                        "trace_id": e.get("trace_id"), "event_type": e.get("type")} for e in events])
        return True

    def _without_poison(self, source_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """After a failed publish: the events that can be stored, or None when none could not (the failure
        was elsewhere). Refused events are logged with the reason and counted; the source moves on."""
        kept = []
        for event in events:
            try:
                check_encodable(event)
            except EventError as exc:
                self.source_errors += 1
                log.warning("source %s: refused event %s: %s", source_id, event.get("id"), exc)
            else:
                kept.append(event)
        return kept if len(kept) < len(events) else None

    def _flush_loop(self) -> None:
        """Every 50 ms: restart dead workers, report backpressure, persist checkpoints and transform state."""
        committers = [inst.commit for inst, _p in self.transforms.values() if hasattr(inst, "commit")]
        while not self._stop.wait(0.05):
            self.router.supervise()
            for lane in list(self.lanes.values()):
                lane.supervise()
                lane.report_backpressure()
            try:
                self.checkpoints.flush()
                for commit in committers:
                    commit()
            except Exception:
                log.exception("persisting checkpoints or transform state failed")

    # ------------------------------------------------------------------ reconcile (orgloop start on a live runtime)
    def apply_routes(self, add: list[RouteSpec], remove: list[str]) -> None:
        """Add and remove routes without a restart; queued events of removed routes are still delivered."""
        for name in remove:
            self.router.remove(name)
        for r in add:
            self.router.add(self._compile_route(r))
        self.spec.routes = [r for r in self.spec.routes if r.name not in set(remove)] + list(add)

    def apply_sources(self, add: list[SourceSpec], remove: list[str], join_timeout: float = 10.0) -> None:
        """Stop removed sources (their checkpoints are kept) and start added ones; a changed source is in both."""
        for sid in remove:
            if sid in self._push_sources:
                self._ingress.unmount(sid)
                self._push_sources.pop(sid).close()
                continue
            thread, stop, source = self._source_threads.pop(sid)
            stop.set()
            thread.join(join_timeout)
            source.close()
        for s in add:
            self._start_source(s)
        gone = set(remove)
        self.spec.sources = [s for s in self.spec.sources if s.id not in gone] + list(add)

    def add_actor(self, a: ActorSpec, depth: int = 1000, policy: str | None = None) -> None:
        """Start the lane of a new actor (before routes to it are added); ``policy`` None: the bus's default."""
        self._make_lane(a, depth, policy).start()
        self.spec.actors.append(a)

    def remove_actor(self, actor_id: str, drain_timeout: float = 5.0) -> None:
        """Retire an actor no route uses any more: its queue gets ``drain_timeout`` seconds to empty; what is
        left stays unacked in the bus (delivered to whatever routes match after the next start)."""
        lane = self.lanes.pop(actor_id)
        # A new list, not an in-place removal: the dispatch thread may be iterating the old one.
        self.router.lanes = [other for other in self.router.lanes if other is not lane]
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline and (len(lane.queue) or lane.busy):
            time.sleep(0.01)
        lane.stop(timeout=max(0.1, deadline - time.monotonic()))
        self.actors.pop(actor_id).close()
        self.spec.actors = [a for a in self.spec.actors if a.id != actor_id]

    def apply_transforms(self, add: list[TransformSpec], remove: list[str]) -> None:
        """Add new transform definitions and close ones no route uses any more."""
        for name in remove:
            instance, _policy = self.transforms.pop(name)
            instance.close()
        for t in add:
            self.transforms[t.name] = self._make_transform(t)
        gone = set(remove)
        self.spec.transforms = [t for t in self.spec.transforms if t.name not in gone] + list(add)

    # ------------------------------------------------------------------ introspection
    @property
    def ingress_port(self) -> int | None:
        """The port the webhook listener is bound to (None: no push source, so no listener)."""
        return self._ingress.port if self._ingress is not None else None

    @property
    def control_port(self) -> int | None:
        """The port the read-only endpoint listens on (the one picked when the spec asked for port 0)."""
        return self._control.port if self._control is not None else None

    @property
    def control_socket(self) -> Path | None:
        """The path of the owner's control socket, while it is on."""
        return self._socket.path if self._socket is not None else None

    def healthy(self) -> tuple[bool, list[str]]:
        """Never green while the log is broken or a breaker is open."""
        problems = [p for bus in self._buses() for p in bus.problems()]
        if self.membership is not None and self.membership.error is not None:
            problems.append(f"fleet store: {self.membership.error}")
        wal = getattr(self.bus, "wal", None)
        if wal is not None and wal.failed:
            problems.append(f"wal: {wal.failed}")
        for lane in list(self.lanes.values()):          # snapshots: a reconcile may change them meanwhile
            for route, pol in list(lane.policies.items()):
                if pol.breaker.state != "closed":
                    problems.append(f"route {route}: circuit breaker {pol.breaker.state}")
        if self.dlq is not None and self.dlq.wal.failed:
            problems.append(f"dead letters: {self.dlq.wal.failed}")
        for lane in list(self.lanes.values()):
            problems.extend(lane.problems())
        problems.extend(self.router.problems())
        return not problems, problems

    def _buses(self) -> list[Any]:
        """Every bus this runtime has open (one, or two for a router or delivery member; none yet while a
        start is opening them)."""
        parts = vars(self)
        opened = [parts.get("bus"), parts.get("events_bus"), self.out_bus]
        return [b for i, b in enumerate(opened) if b is not None and all(b is not o for o in opened[:i])]

    def fleet_status(self) -> dict[str, Any] | None:
        """This member, the fleet's members, leases and group lag (None: not on a scale-out bus)."""
        if self.fleet_store is None:
            return None
        from orgloop.fleet.view import fleet_view

        own = {"member": self.member, "role": self.spec.role,
               "leases_held": sorted(s for s, lease in self.leases.items() if lease.valid())}
        if self.membership is not None and self.membership.error is not None:   # don't wait for a lost server
            return {**own, "error": self.membership.error}
        return {**own, **fleet_view(self.fleet_store, self.spec.bus, self.spec.bus_options, self._namespace())}

    def _checkpoint_of(self, source_id: str) -> str | None:
        if self.fleet_store is None:
            return self.checkpoints.get(source_id)
        if self.membership is not None and self.membership.error is not None:
            return None                   # the store is unreachable: status must not wait for it
        from orgloop.fleet.store import StoreError

        try:
            return self.fleet_store.checkpoint(source_id)
        except StoreError:
            return None

    def status(self, remote: bool = True) -> dict[str, Any]:
        """What this process does. ``remote=False`` leaves out what needs the fleet's store or the bus's
        server (a fleet's source checkpoints, members and lag): /metrics must answer at once in an outage."""
        bus_stats = self.bus.stats()
        wal = bus_stats.get("wal")
        return {
            "name": self.spec.name, "workspace": self.spec.workspace, "pid": os.getpid(),
            "started_at": self.started_at, "healthy": self.healthy()[0], "problems": self.healthy()[1],
            "bus": self.spec.bus, "events_published": self.events_published, "router_events": self.router.events_in,
            "unmatched": self.router.unmatched, "acked": self.tracker.acked,
            "sources": [{"id": s.id, "events": self.source_events.get(s.id, 0),
                         "checkpoint": self._checkpoint_of(s.id) if remote or self.fleet_store is None else None}
                        for s in list(self.spec.sources)] if self.spec.role in ("all", "source") else [],
            "routes": [{"name": name, "actor": r.spec.actor, "dropped_by_transform": r.dropped,
                        **{k: v for k, v in r.lane.stats()["routes"].get(name, {}).items()},
                        "queue_depth": len(r.lane.queue), "max_rate": r.spec.delivery.max_rate}
                       for name, r in list(self.router.routes.items())],   # a snapshot: reconcile may change them
            "actors": [lane.stats() for lane in list(self.lanes.values())],
            "wal": None if wal is None else {k: wal[k] for k in ("segments", "bytes", "data_bytes", "first_seq", "last_seq",
                                                                "acked_watermark", "unacked", "lost_records",
                                                                "syncs", "failed")},
            "taps": len(self.taps.subscribers),
            "dead_letters": self.dlq.count() if self.dlq is not None else len(self._memory_dead_letters),
            "log_entries_dropped": self.hub.dropped if self.hub else 0,
            "ingress": self._ingress.stats() if self._ingress is not None else None,
            "role": self.spec.role,
            "fleet": self.fleet_status() if remote else None,
        }

    # ------------------------------------------------------------------ shutdown
    def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop sources, give in-flight events ``drain_timeout`` seconds to finish, then close everything.

        Whatever is not delivered by then stays unacked in the bus and is delivered after the next start.
        """
        if not self._started:
            return
        self._started = False
        for _t, stop, _src in self._source_threads.values():
            stop.set()
        for t, _stop, _src in self._source_threads.values():
            t.join(timeout=max(drain_timeout, 1.0))
        if self._ingress is not None:
            self._ingress.stop()             # no new webhook posts; ones being stored finish or get 503
        deadline = time.monotonic() + drain_timeout
        if self._subscription is not None:
            self.bus.drain(timeout=max(0.0, deadline - time.monotonic()))
        while time.monotonic() < deadline and any(len(l.queue) or l.busy for l in self.lanes.values()):
            time.sleep(0.01)
        self._stop.set()
        if self._subscription is not None:
            self._subscription.cancel()       # what the router has not taken stays unacked on the bus
        self.router.close()                   # transforms not yet run off the dispatch thread: unacked too
        for lane in self.lanes.values():
            lane.stop(timeout=max(1.0, deadline - time.monotonic()))   # a delivery in progress may finish
        for lane in self.lanes.values():
            if lane.running() and hasattr(lane.actor, "interrupt"):
                # Past the drain deadline: end what still runs (no orphans); it stays unacked.
                lane.actor.interrupt()
                lane.stop(timeout=2.0)
        for step in self._closing_steps():
            step()
        if self.hub:
            self.hub.emit([{"phase": "runtime.stop"}])
            self.hub.close()
        log.info("runtime stopped")

    def request_stop(self) -> bool:
        """Ask :meth:`run_until_signal` to stop the runtime, as a SIGTERM would (``POST /stop`` on the control
        socket); False when nothing is waiting in it (a library user stops the runtime itself)."""
        loop = self._signal_loop
        if loop is None:
            return False
        stopping, wake = loop
        stopping.set()
        wake.set()
        return True

    def run_until_signal(self, drain_timeout: float = 5.0, timeout: float | None = None,
                         on_reload: Callable[[], None] | None = None) -> None:
        """Block until SIGINT/SIGTERM, a stop request (or ``timeout`` seconds), then stop cleanly; a second
        signal exits at once.

        SIGHUP calls ``on_reload`` in this thread (not in the signal handler), as often as it arrives; an
        exception from it is logged and the runtime keeps running. Without ``on_reload``, SIGHUP stops
        cleanly like SIGTERM (it never kills the process with its files left behind)."""
        stopping, reload, wake = threading.Event(), threading.Event(), threading.Event()
        deadline = None if timeout is None else time.monotonic() + timeout

        def handler(signum, frame):
            if signum == signal.SIGHUP and on_reload is not None:
                reload.set()
            elif stopping.is_set():
                os._exit(130)
            else:
                stopping.set()
            wake.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        self._signal_loop = (stopping, wake)
        try:
            while not stopping.is_set():
                wake.wait(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))
                wake.clear()
                if reload.is_set() and not stopping.is_set() and on_reload is not None:
                    reload.clear()
                    try:
                        on_reload()
                    except Exception:
                        log.exception("reload failed; the previous configuration keeps running")
                if deadline is not None and time.monotonic() >= deadline:
                    break
            self.stop(drain_timeout)
        finally:
            self._signal_loop = None
            for s, h in old.items():
                signal.signal(s, h)
