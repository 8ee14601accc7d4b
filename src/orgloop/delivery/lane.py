"""An actor lane: one bounded queue per actor and the worker thread(s) that deliver from it.

Per route, the lane applies the route's delivery policy: token-bucket rate limit, retries with backoff
and jitter, and a circuit breaker (open after N consecutive failures; after the cooldown one probe).
An event leaves the lane delivered, dead-lettered (retry budget spent, or pushed out of a full
drop-oldest queue), and only then is it finished for the ack tracker. Follow-up events an actor returns
are published on the bus (durably, in the trace of their cause) before the cause counts as delivered;
if that fails, the delivery failed.

Waiting for a rate limit, a backoff or an open breaker holds the lane: failures of one actor usually
concern all its routes, and the bounded queue (drop-oldest to the dead-letter store) keeps memory flat.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Sequence

from orgloop.connectors import DeliveryError, DeliveryInterrupted
from orgloop.delivery.breaker import BreakerState, CircuitBreaker
from orgloop.delivery.ratelimit import TokenBucket
from orgloop.delivery.restart import RestartBackoff
from orgloop.delivery.retry import RetryPolicy
from orgloop.event import EventError, adopt
from orgloop.prompts import has_placeholders, render_config
from orgloop.queues import BoundedQueue, QueueClosed
from orgloop.router.acks import AckTracker
from orgloop.spec import DeliverySpec

__all__ = ["ActorLane", "RoutePolicy"]

log = logging.getLogger("orgloop.delivery")
_BATCH = 256
#: A worker hands finished deliveries to the ack tracker at most this many seconds apart (a delivery that
#: took longer is handed over as soon as it finishes).
HANDOVER = 0.005
CLOSED = BreakerState.CLOSED


class _PolicyHot:
    """The fields of a :class:`RoutePolicy` that the delivery loop reads per event.

    They live in a base class because CPython lays out a class's own slots in name order, after its
    base's: here they follow the object's header, all in its first 64 bytes. With 10,000 routes most
    policies are out of cache when their event comes, and one memory fetch then brings in all of them.
    """

    __slots__ = ("ready", "prompt", "config", "unsettled", "delivered")

    ready: bool
    prompt: str | None
    config: dict[str, Any]
    unsettled: bool
    delivered: int


class RoutePolicy(_PolicyHot):
    """The delivery state of one route: rate limiter, retry policy, breaker, counters."""

    # Twelve slots in all (with the base's five): 16 + 12 x 8 bytes plus the GC header make 128, a size
    # class whose objects start on a 64-byte line, so the hot fields never straddle two lines.
    __slots__ = ("templated", "bucket", "retry", "breaker", "failed", "retried", "dead_lettered")

    def __init__(self, route: str, actor: str, spec: DeliverySpec, config: dict[str, Any], prompt: str | None,
                 emit: Callable[[list[dict[str, Any]]], None] | None, clock: Callable[[], float]) -> None:
        self.prompt = prompt
        self.config = config
        self.templated = has_placeholders(config) or has_placeholders(prompt)   # rendered per event
        self.bucket = TokenBucket(spec.max_rate, clock=clock) if spec.max_rate else None
        self.retry = RetryPolicy(max_attempts=spec.retry.max_attempts, backoff=spec.retry.backoff,
                                 initial_delay=spec.retry.initial_delay, max_delay=spec.retry.max_delay,
                                 max_retry_after=spec.retry.max_retry_after)
        # No rate limit, no templating, no loggers: a delivery is one call while the breaker is closed.
        fast = self.bucket is None and not self.templated and emit is None

        def on_change(old: str, new: str) -> None:
            self.ready = fast and new == CLOSED
            phase = {"open": "breaker.open", "half_open": "breaker.half_open", "closed": "breaker.close"}.get(new)
            log.warning("route %s -> %s: circuit breaker %s -> %s", route, actor, old, new)
            if emit is not None and phase:
                emit([{"phase": phase, "route": route, "target": actor, "result": new, "metadata": {"from": old}}])

        self.breaker = CircuitBreaker(failure_threshold=spec.circuit_breaker.failure_threshold,
                                      cooldown=spec.circuit_breaker.cooldown, clock=clock, on_change=on_change)
        # Mirrors that the delivery loop reads per event without a call or a lock: ``ready`` says the fast
        # path applies and follows every breaker state change; ``unsettled`` says failures were counted
        # since the last success, so the next success must reset the breaker's count.
        self.ready = fast
        self.unsettled = False
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.dead_lettered = 0

    def record_failure(self) -> None:
        self.failed += 1
        self.unsettled = True
        self.breaker.record_failure()

    def record_success(self) -> None:
        self.delivered += 1
        self.unsettled = False
        self.breaker.record_success()


class ActorLane:
    def __init__(self, actor_id: str, actor: Any, *, depth: int, policy: str, concurrency: int,
                 tracker: AckTracker, dead_letter: Callable[[list[dict[str, Any]]], None],
                 emit: Callable[[list[dict[str, Any]]], None] | None = None,
                 publish: Callable[[list[dict[str, Any]]], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, restart_delay: float = 1.0) -> None:
        self.actor_id = actor_id
        self.actor = actor
        self.queue = BoundedQueue(depth, policy)
        self.concurrency = concurrency
        self.tracker = tracker
        self.dead_letter = dead_letter
        self.emit = emit
        self.publish = publish        # where actors' follow-up events go (the bus)
        self.clock = clock
        self.follow_ups = 0
        self.policies: dict[str, RoutePolicy] = {}
        self._shared: dict[str, Any] = {}   # equal route configs and prompts, one object each (see _share)
        self._stop = threading.Event()
        self._stopping = False        # read per event by the workers (cheaper than Event.is_set)
        self._threads: list[threading.Thread] = []
        self._drops_unlogged: dict[str, int] = {}   # route -> drops not yet reported
        self._drop_lock = threading.Lock()
        self._last_drop_log: float | None = None
        self.received = 0             # events the router queued here (counted on the router's thread)
        self.dropped = 0
        self.busy = 0
        self.inbox: list[tuple[int, dict[str, Any], Any]] = []   # filled by the router, see flush_inbox()
        self.blocking = policy == "block"
        self.on_room: Callable[[], None] | None = None   # called when a worker took items (the bus's credit)
        # worker supervision and dead-letter write failures (see supervise() and problems())
        self._restarts = RestartBackoff(restart_delay)
        self._dead_since: dict[int, float] = {}
        self._death_cause: str | None = None
        self._orphans: list[tuple[int, dict[str, Any], Any]] = []
        self.worker_deaths = 0
        self.dead_letter_error: str | None = None

    def policy_for(self, route: str, spec: DeliverySpec, config: dict[str, Any], prompt: str | None) -> RoutePolicy:
        pol = self.policies[route] = RoutePolicy(route, self.actor_id, spec, self._share(config), self._share(prompt),
                                                 self.emit, self.clock)
        return pol

    def _share(self, value: Any) -> Any:
        """One object for equal route configs (or prompts) on this lane. The delivery loop hands it to the
        actor with every event: with thousands of routes, one object per distinct value stays in cache
        where one per route would not (actors read ``config``, never change it)."""
        try:
            key = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):      # not plain data: keep the route's own
            return value
        shared = self._shared.setdefault(key, value)
        # JSON writes a tuple as a list and an int key as a string: share only what is really equal
        return shared if shared == value else value

    # ------------------------------------------------------------------ intake
    def flush_inbox(self) -> None:
        """Queue what the router collected in ``inbox`` for this batch (called on the router's thread)."""
        inbox = self.inbox            # routes hold a reference to this very list: empty it in place
        items = inbox[:]
        inbox.clear()
        self.put_many(items)

    def put_many(self, items: list[tuple[int, dict[str, Any], Any]]) -> None:
        """Queue ``(seq, event, route)`` items; evicted ones (drop-oldest) go to the dead-letter store."""
        self.received += len(items)
        evicted = self.queue.put_many_evicting(items)
        if evicted:
            self._on_evicted(evicted)

    def _on_evicted(self, evicted: list[tuple[int, dict[str, Any], Any]]) -> None:
        if not self._write_dead([_dead(ev, route.name, self.actor_id, "backpressure", "queue full (drop-oldest)", 0)
                                 for _seq, ev, route in evicted]):
            return        # stopping: they stay unacked in the bus
        self.dropped += len(evicted)
        for seq, ev, route in evicted:
            route.policy.dead_lettered += 1
            if route.settle is not None:
                route.settle(seq, False, ev)
        self.tracker.done_many([s for s, _e, _r in evicted])
        with self._drop_lock:
            for _s, _e, route in evicted:
                self._drops_unlogged[route.name] = self._drops_unlogged.get(route.name, 0) + 1
        self.report_backpressure()

    def report_backpressure(self, force: bool = False) -> None:
        """Report drops not yet reported: at most once a second (``force``: now), one entry per route.

        Each ``pipeline.backpressure`` entry names the route and the actor and carries the number of
        events dropped since the last report in ``metadata.count``. The runtime calls this regularly, so
        the drops of a burst are reported even when no further drop follows.
        """
        with self._drop_lock:
            now = self.clock()
            due = self._last_drop_log is None or now - self._last_drop_log >= 1.0
            if not self._drops_unlogged or not (due or force):
                return
            counts, self._drops_unlogged = self._drops_unlogged, {}
            self._last_drop_log = now
        log.warning("backpressure: actor %s queue full, %d events dropped to dead letters (%s)", self.actor_id,
                    sum(counts.values()), ", ".join(f"route {r}: {n}" for r, n in sorted(counts.items())))
        if self.emit is not None:
            depth = len(self.queue)
            self.emit([{"phase": "pipeline.backpressure", "route": route, "target": self.actor_id,
                        "queue_depth": depth, "result": "dropped", "metadata": {"count": n}}
                       for route, n in sorted(counts.items())])

    # ------------------------------------------------------------------ credit
    def credit(self) -> int | None:
        """How many more deliveries the lane takes without waiting: the free room of a ``block`` queue;
        None (no limit) for ``drop_oldest``, which makes room by dead-lettering the oldest."""
        if not self.blocking:
            return None
        return self.queue.maxsize - len(self.queue)

    # ------------------------------------------------------------------ workers
    def start(self) -> None:
        for i in range(self.concurrency):
            self._threads.append(self._spawn(i))

    def _spawn(self, index: int) -> threading.Thread:
        t = threading.Thread(target=self._run, name=f"orgloop-actor-{self.actor_id}-{index}", daemon=True)
        t.start()
        return t

    def supervise(self) -> None:
        """Restart worker threads that died (called regularly by the runtime). A dead worker is reported by
        :meth:`problems` until it is restarted, ``restart_delay`` seconds after its death (doubling while
        restarted workers keep dying, up to 30 s)."""
        if self._stopping:
            return
        now = self.clock()
        for i, t in enumerate(self._threads):
            if t.is_alive():
                continue
            died = self._dead_since.get(i)
            if died is None:
                self._dead_since[i] = now
                self.worker_deaths += 1
                log.error("actor %s: worker %d died (%s); restarting it in %.1fs", self.actor_id, i,
                          self._death_cause or "unknown cause", self._restarts.delay)
            elif now - died >= self._restarts.delay:
                del self._dead_since[i]
                self._restarts.restarted(now)
                self._threads[i] = self._spawn(i)

    def problems(self) -> list[str]:
        """Why this lane is not healthy now: dead workers, dead letters that cannot be written."""
        out = [f"actor {self.actor_id}: worker {i} died ({self._death_cause}), restarting"
               for i in sorted(self._dead_since)]
        if self.dead_letter_error is not None:
            out.append(f"actor {self.actor_id}: dead letters cannot be written ({self.dead_letter_error}); "
                       "the events stay unacked and the lane retries")
        return out

    def stop(self, timeout: float | None = None) -> None:
        """Stop the workers: each finishes the delivery it is in, the rest stays unacked (redelivered later)."""
        self._stopping = True
        self._stop.set()
        self.report_backpressure(force=True)
        self.queue.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def running(self) -> bool:
        """True while a worker thread is still alive (after ``stop``: a delivery outlasted its deadline)."""
        return any(t.is_alive() for t in self._threads)

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; returns False when the lane is stopping."""
        return not self._stop.wait(seconds) if seconds > 0 else not self._stop.is_set()

    def _take(self) -> list[tuple[int, dict[str, Any], Any]]:
        """The next batch: what a dead worker left undelivered first, then the queue."""
        if self._orphans:
            with self._drop_lock:
                items, self._orphans = self._orphans, []
            if items:
                return items
        items = self.queue.get_many(_BATCH, 0.2)
        if items and self.on_room is not None:
            self.on_room()
        return items

    def _run(self) -> None:
        """A worker: deliver batches from the queue. Each finished delivery goes to the ack tracker as it
        completes (a fast actor's are handed over together, at most ``HANDOVER`` seconds apart)."""
        clock = time.monotonic
        items: list[tuple[int, dict[str, Any], Any]] = []
        i = 0
        try:
            while not self._stop.is_set():
                try:
                    items = self._take()
                except QueueClosed:
                    return
                if not items:
                    continue
                i = 0
                self.busy += 1
                done: list[int] = []
                deliver = self.actor.deliver
                handed = clock()
                try:
                    for i, (seq, event, route) in enumerate(items):
                        if self._stopping:
                            return   # the rest of the batch stays unacked in the bus and is redelivered on restart
                        pol = route.policy
                        # Fast path: no rate limit, no templating, no loggers, breaker closed -> one call.
                        if pol.ready:
                            try:
                                out = deliver(event, pol.prompt, pol.config)
                                if out:
                                    self._follow_up(event, out)
                            except DeliveryInterrupted:
                                return   # ended at shutdown: stays unacked, delivered again after the restart
                            except Exception as exc:  # the slow path records it, retries, dead-letters
                                if done:              # the slow path may wait: hand over what is finished
                                    self.tracker.done_many(done)
                                    done = []
                                if not self._deliver(seq, event, route, first_error=exc):
                                    return
                            else:
                                if pol.unsettled:
                                    pol.record_success()
                                else:
                                    pol.delivered += 1
                                if route.settle is not None:
                                    route.settle(seq, True, event)
                        else:
                            if done:                  # the slow path may wait: hand over what is finished
                                self.tracker.done_many(done)
                                done = []
                            if not self._deliver(seq, event, route):
                                return   # stopping: the rest stays unacked in the bus and is redelivered on restart
                        done.append(seq)
                        now = clock()
                        if now - handed >= HANDOVER:
                            self.tracker.done_many(done)
                            done = []
                            handed = now
                    i = len(items)
                finally:
                    self.busy -= 1
                    if done:
                        self.tracker.done_many(done)
        except BaseException as exc:
            # This worker dies; supervise() restarts it. What it had not finished is delivered by the next one.
            self._death_cause = _describe(exc) if isinstance(exc, Exception) else type(exc).__name__
            if not self._stopping:
                with self._drop_lock:
                    self._orphans = items[i:] + self._orphans
            raise

    def _deliver(self, seq: int, event: dict[str, Any], route: Any, first_error: Exception | None = None) -> bool:
        """Deliver with rate limit, retries and breaker; dead-letter on give-up. False only when stopping.

        Every attempt, retries included, takes a token of the route's ``max_rate``.
        ``first_error``: the fast path's attempt already failed with it; continue from the first retry.
        A :class:`DeliveryError` with ``retryable=False`` is not retried (but counts for the breaker, as every
        failure does); one with ``retry_after`` makes the next retry wait that long (an HTTP target's
        ``Retry-After``), up to the route's ``max_retry_after``.
        """
        pol = route.policy
        if pol.templated:                       # {{dot.path}} in then.config or the prompt file
            config, prompt = render_config(pol.config, event), render_config(pol.prompt, event)
        else:
            config, prompt = pol.config, pol.prompt
        attempt = 0
        error = ""
        emit = self.emit
        if first_error is not None:
            attempt, error = 1, _describe(first_error)
            pol.record_failure()
            if not _retryable(first_error) or not pol.retry.should_retry(attempt):
                return self._give_up(seq, event, route, pol, error, attempt)
            pol.retried += 1
            if not self._sleep(_retry_delay(pol, attempt, first_error)):
                return False
        bucket = pol.bucket
        while True:
            if bucket is not None:
                while not bucket.try_acquire():
                    if not self._sleep(bucket.delay_for()):
                        return False
            while not pol.breaker.allow():
                if not self._sleep(0.05):
                    return False
            attempt += 1
            if emit is not None:
                emit([_entry("deliver.attempt", event, route.name, self.actor_id, queue_depth=len(self.queue),
                             metadata={"attempt": attempt})])
            t0 = time.perf_counter()
            try:
                out = self.actor.deliver(event, prompt, config)
                if out:
                    self._follow_up(event, out)
            except DeliveryInterrupted:
                return False   # ended at shutdown: neither failed nor delivered; stays unacked
            except Exception as exc:  # any actor failure is a delivery failure
                error = _describe(exc)
                pol.record_failure()
                if emit is not None:
                    emit([_entry("deliver.failure", event, route.name, self.actor_id, error=error, result="failed",
                                 duration_ms=(time.perf_counter() - t0) * 1000, metadata={"attempt": attempt})])
                if not _retryable(exc) or not pol.retry.should_retry(attempt):
                    break
                pol.retried += 1
                delay = _retry_delay(pol, attempt, exc)
                if emit is not None:
                    emit([_entry("deliver.retry", event, route.name, self.actor_id, result="retrying",
                                 metadata={"attempt": attempt, "next_attempt": attempt + 1,
                                           "delay_ms": round(delay * 1000, 3)})])
                if not self._sleep(delay):
                    return False
                continue
            pol.record_success()
            if route.settle is not None:
                route.settle(seq, True, event)
            if emit is not None:
                emit([_entry("deliver.success", event, route.name, self.actor_id, result="delivered",
                             duration_ms=(time.perf_counter() - t0) * 1000, metadata={"attempt": attempt})])
            return True
        return self._give_up(seq, event, route, pol, error, attempt)

    def _follow_up(self, cause: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """Publish an actor's follow-up events durably, each in the trace of its cause."""
        if self.publish is None:
            raise DeliveryError(f"actor {self.actor_id} returned follow-up events, but this lane cannot publish")
        try:
            self.publish([adopt(cause, e, source=self.actor_id) for e in events])
        except EventError as exc:
            raise DeliveryError(f"actor {self.actor_id} returned an invalid follow-up event: {exc}") from None
        self.follow_ups += len(events)

    def _write_dead(self, entries: list[dict[str, Any]]) -> bool:
        """Write dead letters, retrying with backoff while the store fails (``problems()`` reports it, so
        health is red meanwhile). False only when the lane stops first: the events then stay unacked."""
        delay = 0.05
        while True:
            try:
                self.dead_letter(entries)
            except Exception as exc:
                error = _describe(exc)
                if error != self.dead_letter_error:
                    log.error("actor %s: cannot write %d dead letters (%s); retrying, the events stay unacked",
                              self.actor_id, len(entries), error)
                self.dead_letter_error = error
                if not self._sleep(delay):
                    return False
                delay = min(delay * 2, 5.0)
                continue
            if self.dead_letter_error is not None:
                log.warning("actor %s: dead letters are written again", self.actor_id)
                self.dead_letter_error = None
            return True

    def halt(self, seq: int, event: dict[str, Any], route: Any, transform: str, error: str) -> bool:
        """A transform with ``on_error: halt`` failed: the route stops for this event, which becomes a dead
        letter (reason ``halted``) as that transform received it. False only when the lane stops first."""
        if not self._write_dead([_dead(event, route.name, self.actor_id, "halted",
                                       f"transform {transform}: {error}", 0)]):
            return False
        route.policy.dead_lettered += 1
        if self.emit is not None:
            self.emit([_entry("dlq.add", event, route.name, self.actor_id, error=error, result="halted",
                              metadata={"transform": transform})])
        return True

    def _give_up(self, seq: int, event: dict[str, Any], route: Any, pol: "RoutePolicy", error: str,
                 attempt: int) -> bool:
        if not self._write_dead([_dead(event, route.name, self.actor_id, "gave_up", error, attempt)]):
            return False
        pol.dead_lettered += 1
        if route.settle is not None:
            route.settle(seq, False, event)
        if self.emit is not None:
            self.emit([_entry("dlq.add", event, route.name, self.actor_id, error=error, result="gave_up",
                              metadata={"attempts": attempt})])
        return True

    def stats(self) -> dict[str, Any]:
        return {"actor": self.actor_id, "queue_depth": len(self.queue), "queue_max": self.queue.maxsize,
                "received": self.received, "dropped": self.dropped, "follow_ups": self.follow_ups, "routes": {
                    name: {"delivered": p.delivered, "failed": p.failed, "retried": p.retried,
                           "dead_lettered": p.dead_lettered, "breaker": p.breaker.state}
                    for name, p in list(self.policies.items())}}   # a snapshot: reconcile may add routes


def _retryable(exc: Exception) -> bool:
    return getattr(exc, "retryable", True) is not False


def _retry_delay(pol: RoutePolicy, attempt: int, exc: Exception) -> float:
    """The route's backoff, or the ``retry_after`` the target asked for, capped (``RetryPolicy.wait``)."""
    return pol.retry.wait(attempt, getattr(exc, "retry_after", None))


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"


def _dead(event: dict[str, Any], route: str, actor: str, reason: str, error: str, attempts: int) -> dict[str, Any]:
    from orgloop.delivery.dlq import dead_letter

    return dead_letter(event, route=route, actor=actor, reason=reason, error=error, attempts=attempts)


def _entry(phase: str, event: dict[str, Any], route: str, actor: str, **fields: Any) -> dict[str, Any]:
    return {"phase": phase, "event_id": event.get("id"), "trace_id": event.get("trace_id"),
            "source": event.get("source"), "event_type": event.get("type"), "route": route, "target": actor,
            **fields}
