"""``file`` logger (``@orgloop/logger-file``): one JSON object per line, rotated by size and age.

Config: ``path`` (relative to the project; ``~`` is the home directory), ``max_size`` (default ``100MB``),
``max_age`` (default ``7d``), ``max_files`` (rotated files kept, default 10), ``compress`` (gzip rotated
files, default true). OrgLoop's form nests the four under ``rotation:``, which wins over the flat keys.
``format`` (``jsonl`` only) and ``buffer`` are accepted as OrgLoop writes them; entries are already
batched by the log hub. Rotated files are ``<path>.1[.gz]`` (newest) … ``<path>.N[.gz]``.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from orgloop.plugins import Duration, PluginConfig, Size

__all__ = ["JsonlFileLogger", "FileLoggerConfig"]


class Rotation(PluginConfig):
    max_size: Size | None = None
    max_age: Duration | None = None
    max_files: int | None = Field(None, ge=0)
    compress: bool | None = None


class Buffer(PluginConfig):
    size: int | None = Field(None, ge=1)
    flush_interval: Duration | None = None


class FileLoggerConfig(PluginConfig):
    """Settings of the ``file`` logger."""

    path: str = Field(description="the log file, relative to the project (~ for the home directory)")
    format: Literal["jsonl"] = "jsonl"
    max_size: Size = Field(100 << 20, description="rotate when the file reaches this size")
    max_age: Duration = Field(7 * 86400.0, description="rotate when the file is this old")
    max_files: int = Field(10, ge=0, description="rotated files kept")
    compress: bool = Field(True, description="gzip rotated files")
    rotation: Rotation | None = Field(None, description="OrgLoop's form of the four settings above")
    buffer: Buffer | None = Field(None, description="accepted for OrgLoop compatibility (the log hub batches)")

    def rotation_setting(self, name: str) -> Any:
        """``rotation.<name>`` when given, else the flat setting."""
        nested = getattr(self.rotation, name) if self.rotation is not None else None
        return getattr(self, name) if nested is None else nested


class JsonlFileLogger:
    config_model = FileLoggerConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        cfg = FileLoggerConfig.model_validate(config)
        self.path = (Path(base_dir) / Path(cfg.path).expanduser()).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_size = cfg.rotation_setting("max_size")
        self.max_age = cfg.rotation_setting("max_age")
        self.max_files = cfg.rotation_setting("max_files")
        self.compress = cfg.rotation_setting("compress")
        self.clock = clock
        self._open()

    def _open(self) -> None:
        self._f = open(self.path, "ab")
        self._size = self._f.tell()
        try:
            self._opened = os.stat(self.path).st_ctime if self._size else self.clock()
        except OSError:
            self._opened = self.clock()

    def _name(self, i: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{i}" + (".gz" if self.compress else ""))

    def rotate(self) -> None:
        """Close the current file, shift ``.1 … .N`` up by one, start a new file."""
        self._f.close()
        oldest = self._name(self.max_files)
        oldest.unlink(missing_ok=True)
        for i in range(self.max_files - 1, 0, -1):
            if self._name(i).exists():
                os.replace(self._name(i), self._name(i + 1))
        if self.max_files >= 1 and self.path.exists():
            if self.compress:
                with open(self.path, "rb") as src, gzip.open(self._name(1), "wb") as dst:
                    shutil.copyfileobj(src, dst)
                self.path.unlink()
            else:
                os.replace(self.path, self._name(1))
        else:
            self.path.unlink(missing_ok=True)
        self._f = open(self.path, "ab")
        self._size = 0
        self._opened = self.clock()

    def log_many(self, entries: list[dict[str, Any]]) -> None:
        if self._size and (self._size >= self.max_size or self.clock() - self._opened >= self.max_age):
            self.rotate()
        data = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in entries).encode()
        self._f.write(data)
        self._f.flush()
        self._size += len(data)

    def close(self) -> None:
        self._f.close()
