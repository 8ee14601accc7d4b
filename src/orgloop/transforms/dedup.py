"""``dedup`` transform: drop an event whose key was already seen within ``window``.

Config: ``key`` (dot-paths, default ``[source, type, id]``), ``window`` (duration, default ``5m``).
The key is the xxh3-128 hash of the msgpack of the route name and the values: a transform used on several
routes keeps separate marks per route, because each route delivers (or dead-letters) on its own.

A key goes through two states:

* **claimed** (in memory only) when the first copy passes, remembering the bus sequence number that
  carried it. Another copy (a different seq: a source re-polling after a restart, a retried webhook, the
  same event published twice) is dropped while the claim lasts. The same seq again is a redelivery of
  that copy and passes.
* **delivered** when the route reports the outcome through the claim the copy carried (see
  :mod:`orgloop.transforms`): the actor took it (or a later transform dropped it). Each copy settles its
  own key, so the split parts of one event are settled one by one. Delivered marks are committed to LMDB
  in batches (``commit()``, called by the runtime's flush loop every 50 ms, and at ``close()``); from
  then on every copy is dropped, a redelivery of the same seq after a crash included. If the copy is
  dead-lettered (or halted) instead, the claim is released, so a later copy is delivered: dedup never
  loses an event. (``orgloop dlq replay`` does not run transforms again, so it does not pass here.)

So a key reaches the actor once, except after a crash between the actor taking the copy and its mark
being committed (at most one flush interval): then that copy, with the same event id, is delivered again.
An actor whose effect must be exactly once makes it idempotent by event id to cover that window.

**In a fleet** (:meth:`DedupTransform.share`) claims and marks live in the fleet's shared store instead
(:class:`orgloop.fleet.store.FleetStore`): a claim is a key set only if absent, holding the bus ref of the
copy, so a copy seen by another member is dropped and a redelivery of the same entry (reclaimed from a dead
member) passes; a delivered mark is set, and the claim removed, at the next ``commit()``, as locally. The
guarantee is the single-host one, fleet-wide. In a role-split fleet the router runs the transform and the
key counts as delivered once its delivery record is durable on the bus. While the shared store cannot be
reached, a claim fails as a transform error, so the transform's ``on_error`` decides (``pass``, the default:
the event goes on without dedup; ``halt``: it becomes a dead letter); no event waits for the store.
Called without a claims list (``ctx.claims is None``, e.g. ``orgloop test``), a passing key is marked
delivered at once, since no outcome will be reported.
"""
from __future__ import annotations

import struct
import threading
import time
from collections import OrderedDict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import lmdb
import msgpack
import xxhash
from pydantic import Field, field_validator

from orgloop.event import MISSING, get_path
from orgloop.plugins import Duration, PluginConfig
from orgloop.transforms import TransformContext, TransformError

__all__ = ["DedupTransform", "DedupConfig"]


class DedupConfig(PluginConfig):
    """Settings of the ``dedup`` transform."""

    key: list[str] = Field(default_factory=lambda: ["source", "type", "id"], min_length=1,
                           description="dot-paths whose values make the key (a single string is one path)")
    window: Duration = Field(300.0, description="how long a key counts as seen")
    store: str | None = Field(None, description="accepted for OrgLoop compatibility; marks always live in "
                                                "LMDB in the workspace's data directory")

    @field_validator("key", mode="before")
    @classmethod
    def _one_path(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

_VAL = struct.Struct("<dQ")   # expiry (unix seconds), seq


class DedupTransform:
    """Drops copies of a key within ``window``; see the module docstring for when a key counts as seen."""

    config_model = DedupConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 cache_size: int = 100_000) -> None:
        cfg = DedupConfig.model_validate(config)
        self.name = name
        self.paths = [tuple(k.split(".")) for k in cfg.key]
        self.window = cfg.window
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[float, int]] = OrderedDict()   # delivered marks, recently used
        self._cache_size = cache_size
        self._dirty: dict[bytes, tuple[float, int]] = {}        # delivered marks not yet committed
        self._on_commit: list[Callable[[], None]] = []          # called once the dirty marks are committed
        self._claims: dict[bytes, tuple[float, Any]] = {}       # key -> (expiry, seq) of the copy in flight
        self._lock = threading.Lock()
        self.env = None
        if state_dir is not None:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            self.env = lmdb.open(str(state_dir), map_size=256 << 20, subdir=True, metasync=False)
        self.dropped = 0
        self._scan_from = b""
        self._shared: Any = None                                 # the fleet's store, once shared
        self._shared_marks: list[tuple[bytes, str, bool]] = []   # settled copies not yet written there

    def share(self, store: Any) -> None:
        """Keep claims and marks in a fleet's shared store (``FleetStore``) from now on."""
        self._shared = store

    def key_of(self, event: dict[str, Any], route: str = "") -> bytes:
        """The dedup key of ``event`` on ``route``."""
        values = []
        for path in self.paths:
            value = get_path(event, path)
            values.append(None if value is MISSING else value)
        return xxhash.xxh3_128_digest(msgpack.packb([route, values], default=str))

    def _delivered(self, key: bytes) -> tuple[float, int] | None:
        hit = self._dirty.get(key) or self._cache.get(key)
        if hit is None and self.env is not None:
            with self.env.begin() as txn:
                raw = txn.get(key)
            if raw is not None:
                hit = _VAL.unpack(raw)
        return hit

    def _mark_delivered(self, key: bytes, mark: tuple[float, int]) -> None:
        self._dirty[key] = mark
        self._cache[key] = mark
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        key = self.key_of(event, ctx.route)
        if self._shared is not None:
            return self._apply_shared(event, ctx, key)
        now = self.clock()
        with self._lock:
            mark = self._delivered(key)
            if mark is not None and mark[0] > now:
                self.dropped += 1
                return []
            claim = self._claims.get(key)
            if claim is not None and claim[0] > now:
                if claim[1] != ctx.seq or ctx.claims is None:
                    self.dropped += 1
                    return []
            elif ctx.claims is None:
                self._mark_delivered(key, (now + self.window, 0))
                return [event]
            else:
                self._claims[key] = (now + self.window, ctx.seq)
        if ctx.claims is not None:                  # a first copy, or a redelivery of the copy in flight
            ctx.claims.append(partial(self._settle, key, ctx.seq))
        return [event]

    def _settle(self, key: bytes, seq: Any, delivered: bool, durable: Callable[[], None]) -> None:
        """The copy with ``key`` carried by ``seq`` is finished: mark the key delivered (``durable`` is
        called once the mark is committed), or release it (``durable`` at once)."""
        with self._lock:
            claim = self._claims.get(key)
            if claim is not None and claim[1] == seq:   # else: expired and claimed again by another copy
                del self._claims[key]
                if delivered:
                    self._mark_delivered(key, claim)
                    self._on_commit.append(durable)
                    return
        durable()

    def _apply_shared(self, event: dict[str, Any], ctx: TransformContext, key: bytes) -> list[dict[str, Any]]:
        token = str(ctx.seq) if ctx.claims is not None else f"now-{self.clock()}"
        try:
            if not self._shared.dedup_claim(self.name, key, token, self.window):
                with self._lock:
                    self.dropped += 1
                return []
            if ctx.claims is None:
                self._shared.dedup_settle(self.name, [(key, token, True)], self.window)
        except Exception as exc:   # the store is unreachable: the transform's on_error decides, nothing is stuck
            raise TransformError(f"dedup {self.name}: the fleet's shared store: {exc}") from exc
        if ctx.claims is not None:
            ctx.claims.append(partial(self._settle_shared, key, token))
        return [event]

    def _settle_shared(self, key: bytes, token: str, delivered: bool, durable: Callable[[], None]) -> None:
        with self._lock:
            self._shared_marks.append((key, token, delivered))
            self._on_commit.append(durable)

    def _commit_shared(self) -> None:
        """Write the settled copies to the shared store; on failure they wait for the next commit (their
        events stay unacked meanwhile)."""
        with self._lock:
            marks, self._shared_marks = self._shared_marks, []
            on_commit, self._on_commit = self._on_commit, []
        try:
            self._shared.dedup_settle(self.name, marks, self.window)
        except Exception:
            with self._lock:
                self._shared_marks[:0] = marks
                self._on_commit[:0] = on_commit
            raise
        for done in on_commit:
            done()

    def commit(self) -> None:
        """Persist the marks made since the last commit (one LMDB transaction); drop expired ones."""
        if self._shared is not None:
            self._commit_shared()
            return
        with self._lock:
            dirty, self._dirty = self._dirty, {}
            on_commit, self._on_commit = self._on_commit, []
        if self.env is None or not dirty:
            for done in on_commit:
                done()
            return
        now = self.clock()
        with self.env.begin(write=True) as txn:
            for key, (expiry, seq) in dirty.items():
                txn.put(key, _VAL.pack(expiry, seq))
            # Incremental cleanup: look at a bounded slice of the keys per commit, resuming where the last
            # commit stopped, so the cost per commit stays flat however large the state grows.
            cursor = txn.cursor()
            positioned = cursor.set_range(self._scan_from) if self._scan_from else cursor.first()
            visited = 0
            while positioned and visited < 2000:
                visited += 1
                if _VAL.unpack(cursor.value())[0] <= now:
                    positioned = cursor.delete()
                else:
                    positioned = cursor.next()
            self._scan_from = cursor.key() if positioned else b""
        for done in on_commit:
            done()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            if self.env is not None:
                self.env.close()
