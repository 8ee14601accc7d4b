"""``file`` source and actor.

Source config: ``path`` (a JSONL file, relative to the project), ``type`` (for lines that are bare
payloads, default ``resource.changed``). The checkpoint is the byte offset after the last complete line
consumed; a partial last line waits for its newline; a file that shrank (rotated or truncated) is read
from the start again.

A line is either a whole event envelope (it has ``type``; its ``source``, if given, must be this source's
id) or a bare payload that becomes one. A line that cannot be an event is refused, logged with its reason
and byte offset, counted in ``invalid_lines``, and the source moves on: invalid JSON or UTF-8, NaN or
Infinity, nesting deeper than :data:`orgloop.event.MAX_DEPTH`, integers beyond 64 bits, a line longer
than 1 MiB, an invalid envelope, or an envelope that claims another source. Lines without an ``id`` get a
deterministic one from (source, device, inode, byte offset, a hash of the line), so reading the same line
again after a crash gives the same id and dedup recognises it.

Actor config: ``path`` (JSONL file to append to), ``fsync`` (default false), ``include_prompt``.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from orgloop.connectors import DeliveryError
import xxhash

from orgloop.event import EventError, loads_strict, natural_event_id, new_event, validate_event

__all__ = ["FileSource", "FileActor"]

log = logging.getLogger("orgloop.connectors.file")
_READ = 1 << 20


class FileSource:
    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        if "path" not in config:
            raise ValueError(f"file source {source_id!r}: config.path is required")
        self.id = source_id
        self.path = (base_dir / config["path"]).resolve()
        self.type = config.get("type", "resource.changed")
        self.invalid_lines = 0
        self.restarts = 0
        self._file_key = (0, 0)

    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        offset = int(checkpoint or 0)
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return [], checkpoint
        if size < offset:   # truncated or replaced: start over
            log.warning("file source %s: %s shrank below the checkpoint, reading it from the start", self.id, self.path)
            self.restarts += 1
            offset = 0
        events: list[dict[str, Any]] = []
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            self._file_key = (st.st_dev, st.st_ino)
            f.seek(offset)
            while len(events) < max_events:
                chunk = f.read(_READ)
                if not chunk:
                    break
                end = chunk.rfind(b"\n")
                if end < 0:
                    if len(chunk) < _READ:
                        break                  # a partial last line: wait for its newline
                    skip = self._skip_long_line(f, offset + len(chunk))
                    if skip is None:
                        break
                    offset = skip
                    f.seek(offset)
                    continue
                lines = chunk[:end].split(b"\n")
                used = 0
                for line in lines:
                    start = offset + used
                    used += len(line) + 1
                    if line.strip():
                        ev = self._parse(line, start)
                        if ev is not None:
                            events.append(ev)
                    if len(events) >= max_events:
                        break
                offset += used
                f.seek(offset)
        return events, str(offset)

    def _skip_long_line(self, f, pos: int) -> int | None:
        """Skip a line longer than one read; returns the offset after it (None: its end is not written yet)."""
        f.seek(pos)
        while True:
            chunk = f.read(_READ)
            if not chunk:
                return None
            i = chunk.find(b"\n")
            if i >= 0:
                self.invalid_lines += 1
                log.warning("file source %s: refused a line longer than %d bytes ending at byte %d of %s",
                            self.id, _READ, pos + i + 1, self.path)
                return pos + i + 1
            pos += len(chunk)

    def _parse(self, line: bytes, start: int) -> dict[str, Any] | None:
        """The event on the line that starts at byte ``start``, or None (refused, logged, counted)."""
        try:
            obj = loads_strict(line)
            if isinstance(obj, dict) and "type" in obj:
                claimed = obj.setdefault("source", self.id)
                if claimed != self.id:
                    raise EventError(f"the envelope claims source {claimed!r}; this source is {self.id!r}")
                obj.setdefault("provenance", {"platform": "file"})
                if "id" not in obj:
                    obj["id"] = self._line_id(line, start)
                return validate_event(obj)
        except EventError as exc:
            self.invalid_lines += 1
            log.warning("file source %s: refused the line at byte %d of %s: %s", self.id, start, self.path, exc)
            return None
        event = new_event(self.id, self.type, obj if isinstance(obj, dict) else {"value": obj},
                          provenance={"platform": "file"})
        event["id"] = self._line_id(line, start)
        return event

    def _line_id(self, line: bytes, start: int) -> str:
        dev, ino = self._file_key
        return natural_event_id(self.id, dev, ino, start, xxhash.xxh3_64_hexdigest(line))

    def close(self) -> None:
        pass


class FileActor:
    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        if "path" not in config:
            raise ValueError(f"file actor {actor_id!r}: config.path is required")
        self.id = actor_id
        self.path = (base_dir / config["path"]).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = bool(config.get("fsync", False))
        self.include_prompt = bool(config.get("include_prompt", False))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        record = {"event": event, "prompt": prompt} if self.include_prompt else event
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n").encode()
        try:
            with self._lock:
                os.write(self._fd, line)       # O_APPEND: one write per line, never interleaved
                if self.fsync:
                    os.fsync(self._fd)
        except OSError as exc:
            raise DeliveryError(f"file actor {self.id}: cannot write {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        os.close(self._fd)
