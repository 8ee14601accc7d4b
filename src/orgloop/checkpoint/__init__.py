"""Source checkpoints: an opaque string per source that says where to resume.

Three stores behind one protocol (``get``, ``set``, ``set_many``, ``flush``, ``close``):

* :class:`LmdbCheckpointStore` (default where a data directory exists): sets are buffered and
  committed in one LMDB transaction per batch (≥ ``batch_size`` sets or ≥ ``batch_interval`` s).
* :class:`FileCheckpointStore`: one JSON file per source, written atomically (temp file, fsync, rename,
  directory fsync) - the OrgLoop layout ``<modulePath>/.orgloop/checkpoints/<sourceId>.json``.
* :class:`InMemoryCheckpointStore`: tests and library use.

In a fleet (a scale-out bus) these stores are not used for sources: checkpoints live in the fleet's shared
store and are written with a compare-and-set on the source's lease epoch (:mod:`orgloop.fleet`).

Losing an unflushed batch in a crash only moves a source back: the runtime advances a checkpoint
after the source's events are durable on the bus, so the worst case is a redelivery, never a loss.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from orgloop.checkpoint.stores import FileCheckpointStore, InMemoryCheckpointStore, LmdbCheckpointStore

__all__ = ["CheckpointStore", "LmdbCheckpointStore", "FileCheckpointStore", "InMemoryCheckpointStore",
           "resolve_checkpoint_store", "STORES"]

STORES = ("lmdb", "file", "memory")


class CheckpointStore(Protocol):
    def get(self, source_id: str) -> str | None: ...
    def set(self, source_id: str, checkpoint: str) -> None: ...
    def set_many(self, checkpoints: dict[str, str]) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def resolve_checkpoint_store(config: dict[str, Any] | None, *, module_path: Path | None,
                             data_dir: Path | None) -> CheckpointStore:
    """Pick the store from ``defaults.checkpoint`` (``store``, ``dir``), else automatically.

    Automatic (the spec's order): a module path -> files at ``<modulePath>/.orgloop/checkpoints``; else a
    data directory -> LMDB at ``<data_dir>/checkpoints``; else memory. ``dir`` is relative to the module
    path (or the data directory) unless absolute. ``orgloop start`` passes only the workspace's data
    directory, so workspaces never share checkpoints.
    """
    config = config or {}
    store = config.get("store")
    if store is not None and store not in STORES:
        raise ValueError(f"defaults.checkpoint.store must be one of {', '.join(STORES)}, not {store!r}")
    base = module_path or data_dir
    directory = config.get("dir")
    if directory is not None:
        d = Path(directory)
        if not d.is_absolute():
            if base is None:
                raise ValueError("a relative defaults.checkpoint.dir needs a project or data directory")
            d = base / d
    else:
        d = None
    if store is None:
        store = "file" if module_path is not None else "lmdb" if data_dir is not None else "memory"
    if store == "memory":
        return InMemoryCheckpointStore()
    if store == "file":
        if d is None:
            if module_path is not None:
                d = module_path / ".orgloop" / "checkpoints"
            elif data_dir is not None:
                d = data_dir / "checkpoints-json"
            else:
                raise ValueError("the file checkpoint store needs a directory")
        return FileCheckpointStore(d)
    if d is None:
        if data_dir is None:
            raise ValueError("the lmdb checkpoint store needs a data directory or defaults.checkpoint.dir")
        d = data_dir / "checkpoints"
    return LmdbCheckpointStore(d)
