"""The checkpoint store implementations."""
from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Callable

import lmdb

from orgloop.atomicfile import atomic_write

__all__ = ["InMemoryCheckpointStore", "FileCheckpointStore", "LmdbCheckpointStore"]

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,199}$")


def _check_id(source_id: str) -> str:
    if not isinstance(source_id, str) or not _SAFE_ID.match(source_id) or ".." in source_id:
        raise ValueError(f"invalid source id for a checkpoint: {source_id!r} (letters, digits, . _ @ - only)")
    return source_id


class InMemoryCheckpointStore:
    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def get(self, source_id: str) -> str | None:
        return self._data.get(source_id)

    def set(self, source_id: str, checkpoint: str) -> None:
        self._data[source_id] = checkpoint

    def set_many(self, checkpoints: dict[str, str]) -> None:
        self._data.update(checkpoints)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class FileCheckpointStore:
    """``<dir>/<sourceId>.json`` holding ``{"source": id, "checkpoint": value}``, replaced atomically."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, source_id: str) -> Path:
        return self.dir / f"{_check_id(source_id)}.json"

    def get(self, source_id: str) -> str | None:
        try:
            data = json.loads(self._path(source_id).read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise ValueError(f"checkpoint file {self._path(source_id)} is not valid JSON: {exc}") from None
        value = data.get("checkpoint") if isinstance(data, dict) else None
        return value if isinstance(value, str) else None

    def set(self, source_id: str, checkpoint: str) -> None:
        atomic_write(self._path(source_id), json.dumps({"source": source_id, "checkpoint": checkpoint}).encode())

    def set_many(self, checkpoints: dict[str, str]) -> None:
        for k, v in checkpoints.items():
            self.set(k, v)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class LmdbCheckpointStore:
    """Checkpoints in LMDB, committed in batches (never per set)."""

    def __init__(self, directory: str | Path, *, batch_size: int = 1000, batch_interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        # metasync=False: a crash may lose the last commit, i.e. move a source back one batch (redelivery).
        self.env = lmdb.open(str(self.dir), map_size=64 << 20, subdir=True, metasync=False, sync=True)
        self._buffer: dict[str, str] = {}
        self._sets = 0
        self._lock = threading.Lock()
        self._batch_size = batch_size
        self._interval = batch_interval
        self._clock = clock
        self._last = clock()
        self.commits = 0

    def get(self, source_id: str) -> str | None:
        with self._lock:
            if source_id in self._buffer:
                return self._buffer[source_id]
        with self.env.begin() as txn:
            raw = txn.get(source_id.encode())
        return raw.decode() if raw is not None else None

    def set(self, source_id: str, checkpoint: str) -> None:
        self.set_many({source_id: checkpoint})

    def set_many(self, checkpoints: dict[str, str]) -> None:
        with self._lock:
            self._buffer.update(checkpoints)
            self._sets += len(checkpoints)
            due = self._sets >= self._batch_size or self._clock() - self._last >= self._interval
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer = self._buffer, {}
            self._sets = 0
            self._last = self._clock()
        if not batch:
            return
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in batch.items():
                        txn.put(k.encode(), v.encode())
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        self.commits += 1

    def close(self) -> None:
        self.flush()
        self.env.close()
