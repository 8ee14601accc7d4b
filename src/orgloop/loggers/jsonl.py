"""``file`` logger (``@orgloop/logger-file``): one JSON object per line, rotated by size and age.

Config: ``path`` (relative to the project), ``max_size`` (default ``100MB``), ``max_age`` (default ``7d``),
``max_files`` (rotated files kept, default 10), ``compress`` (gzip rotated files, default true). Rotated
files are ``<path>.1[.gz]`` (newest) … ``<path>.N[.gz]``.
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from orgloop.units import parse_duration, parse_size

__all__ = ["JsonlFileLogger"]


class JsonlFileLogger:
    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        if "path" not in config:
            raise ValueError(f"file logger {name!r}: config.path is required")
        self.path = (Path(base_dir) / config["path"]).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_size = parse_size(config.get("max_size", "100MB"))
        self.max_age = parse_duration(config.get("max_age", "7d"))
        self.max_files = int(config.get("max_files", 10))
        self.compress = bool(config.get("compress", True))
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
