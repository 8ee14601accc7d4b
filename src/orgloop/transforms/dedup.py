"""``dedup`` transform: drop an event whose key was already seen within ``window``.

Config: ``key`` (dot-paths, default ``[source, type, id]``), ``window`` (duration, default ``5m``).
The key is the xxh3-128 hash of the msgpack of the values. State lives in LMDB under the transform's
state directory (one environment per transform), so it survives restarts; without a state directory
it is kept in memory.

Each key remembers the bus sequence number that first carried it. The same key on the *same* seq is a
redelivery of that event after a crash (the bus could not know whether it was delivered), so it passes:
dedup never loses an event. The same key on a *different* seq (a source re-polling after a restart, a
webhook retried, the same event published twice) is a duplicate and is dropped: that is the
exactly-once effect the transform gives. Marks are committed to LMDB in batches (``commit()``, called by
the runtime's flush loop, and at ``close()``); a crash loses at most the last batch of marks, which can
only let a duplicate through, never drop an event.
"""
from __future__ import annotations

import struct
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import lmdb
import msgpack
import xxhash

from orgloop.transforms import TransformContext
from orgloop.units import parse_duration

__all__ = ["DedupTransform"]

_VAL = struct.Struct("<dQ")   # expiry (unix seconds), seq
_MISSING = object()


class DedupTransform:
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path | None = None,
                 state_dir: Path | None = None, clock: Callable[[], float] = time.time,
                 cache_size: int = 100_000) -> None:
        unknown = set(config) - {"key", "window", "store"}
        if unknown:
            raise ValueError(f"dedup transform {name!r}: unknown config keys {sorted(unknown)}")
        keys = config.get("key", ["source", "type", "id"])
        if isinstance(keys, str):
            keys = [keys]
        if not keys or not all(isinstance(k, str) for k in keys):
            raise ValueError(f"dedup transform {name!r}: key must be a list of dot-paths")
        self.name = name
        self.paths = [tuple(k.split(".")) for k in keys]
        self.window = parse_duration(config.get("window", "5m"))
        self.clock = clock
        self._cache: OrderedDict[bytes, tuple[float, int]] = OrderedDict()
        self._cache_size = cache_size
        self._dirty: dict[bytes, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self.env = None
        if state_dir is not None:
            Path(state_dir).mkdir(parents=True, exist_ok=True)
            self.env = lmdb.open(str(state_dir), map_size=256 << 20, subdir=True, metasync=False)
        self.dropped = 0
        self._scan_from = b""

    def key_of(self, event: dict[str, Any]) -> bytes:
        values = []
        for path in self.paths:
            cur: Any = event
            for part in path:
                cur = cur.get(part, _MISSING) if isinstance(cur, dict) else _MISSING
                if cur is _MISSING:
                    break
            values.append(None if cur is _MISSING else cur)
        return xxhash.xxh3_128_digest(msgpack.packb(values, default=str))

    def _lookup(self, key: bytes) -> tuple[float, int] | None:
        hit = self._dirty.get(key) or self._cache.get(key)
        if hit is None and self.env is not None:
            with self.env.begin() as txn:
                raw = txn.get(key)
            if raw is not None:
                hit = _VAL.unpack(raw)
        return hit

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        key = self.key_of(event)
        now = self.clock()
        with self._lock:
            hit = self._lookup(key)
            if hit is not None and hit[0] > now and (ctx.seq == 0 or hit[1] != ctx.seq):
                self.dropped += 1
                return []
            if hit is None or hit[0] <= now:
                mark = (now + self.window, ctx.seq)
                self._dirty[key] = mark
                self._cache[key] = mark
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return [event]

    def commit(self) -> None:
        """Persist the marks made since the last commit (one LMDB transaction); drop expired ones."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if self.env is None or not dirty:
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

    def close(self) -> None:
        self.commit()
        if self.env is not None:
            self.env.close()
