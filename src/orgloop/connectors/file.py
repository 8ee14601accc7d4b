"""``file`` source and actor.

Source config: ``path`` (a JSONL file, relative to the project), ``type`` (for lines that are bare
payloads, default ``resource.changed``). The checkpoint names the file (device and inode), the byte offset
after the last complete line consumed and a fingerprint of the bytes before it; a partial last line waits
for its newline.

Rotation and truncation lose and double no line:

- **rename + new file** (logrotate's default, Python's ``RotatingFileHandler``): the source keeps reading
  the renamed file to its end (across a restart too: it finds it beside the path, as ``<name>.1``,
  ``<name>-<date>``, …, by inode), then reads the new file from its start. A partial last line left in the
  renamed file is dropped with a warning. If the renamed file is gone (deleted, compressed) before it was
  read to its end, what was not read is lost: a warning says so. (No descriptor is held between polls.)
- **copy-and-truncate**: a file smaller than the offset, or whose bytes before the offset changed (it was
  truncated and written past the old offset between two polls), is read from its start again
  (``restarts`` counts both cases). The fingerprint is checked again after each read: a truncation that
  raced the read makes the source read the file again from its start (a line read twice has the same id,
  so dedup drops it) rather than skip what was refilled.

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
from typing import Any, BinaryIO, Literal

import xxhash
from pydantic import Field

from orgloop.connectors import DeliveryError
from orgloop.event import EventError, loads_strict, natural_event_id, new_event, validate_event
from orgloop.plugins import PluginConfig

__all__ = ["FileSource", "FileActor", "FileSourceConfig", "FileActorConfig"]


class FileSourceConfig(PluginConfig):
    """Settings of the ``file`` source."""

    path: str = Field(description="a JSONL file, relative to the project")
    type: Literal["resource.changed", "actor.stopped", "message.received"] = Field(
        "resource.changed", description="the type of events made from lines that are bare payloads")


class FileActorConfig(PluginConfig):
    """Settings of the ``file`` actor."""

    path: str = Field(description="the JSONL file to append to, relative to the project")
    fsync: bool = Field(False, description="fsync after every line")
    include_prompt: bool = Field(False, description="write {event, prompt} instead of the bare event")

log = logging.getLogger("orgloop.connectors.file")
_READ = 1 << 20
_TAIL = 64


class FileSource:
    config_model = FileSourceConfig

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        cfg = FileSourceConfig.model_validate(config)
        self.id = source_id
        self.path = (base_dir / cfg.path).resolve()
        self.type = cfg.type
        self.invalid_lines = 0
        self.restarts = 0
        self._file_key = (0, 0)                                       # (device, inode) being read
        self._file: tuple[BinaryIO, tuple[int, int]] | None = None   # that file, open during a poll

    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        try:
            return self._poll(checkpoint, max_events)
        finally:
            self._close_file()      # no descriptor is held between polls; a rotated file is found by inode

    def _poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        pos = self._follow(checkpoint)
        if pos is None:
            return [], checkpoint
        f, ident, start, tail = pos
        # Whether the file was rotated away is asked before reading it: then a read that finds nothing
        # new has seen every line written to it before the rotation, and switching files loses none.
        rotated = ident != self._current()
        events, offset = self._read(f, start, max_events)
        if not events and offset == start and rotated:
            # Rotated away and read to its end: continue with the file now at the path, from its start.
            rest = self._size(f) - offset
            if rest:
                log.warning("file source %s: a rotated file ended in a %d-byte line without a newline; dropped",
                            self.id, rest)
            self._close_file()
            pos = self._follow(None)
            if pos is None:
                return [], checkpoint
            f, ident, start, tail = pos
            events, offset = self._read(f, start, max_events)
        if tail is not None and start and self._tail(f, start) != tail:
            # Truncated (and perhaps refilled) while we read: what we read may be old lines or new ones.
            # Keep it and read the file again from its start; a line read twice has the same id.
            log.warning("file source %s: %s was truncated while being read, reading it from the start",
                        self.id, self.path)
            self.restarts += 1
            offset = 0
        return events, f"{ident[0]}:{ident[1]}:{offset}:{self._tail(f, offset)}"

    # ------------------------------------------------------------------ following rotation and truncation
    def _current(self) -> tuple[int, int] | None:
        """(device, inode) of the file now at the path (None: no file there)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    @staticmethod
    def _size(f: BinaryIO) -> int:
        return os.fstat(f.fileno()).st_size

    @staticmethod
    def _tail(f: BinaryIO, offset: int) -> str:
        """A fingerprint of the bytes just before ``offset``: a rewrite of the file in place changes it."""
        start = max(0, offset - _TAIL)
        return xxhash.xxh3_64_hexdigest(os.pread(f.fileno(), offset - start, start))

    def _close_file(self) -> None:
        if self._file is not None:
            self._file[0].close()
            self._file = None

    def _open(self, ident: tuple[int, int] | None) -> tuple[BinaryIO, tuple[int, int]] | None:
        """Open the file with identity ``ident``: at the path, or renamed beside it (``<name>.1``, ``<name>-date``).

        The path is tried first and the rotated names only if it holds another file, judged on the file
        opened, not on an earlier stat: a rotation between the two must not hide the renamed file."""
        opened = self._open_matching(self.path, ident)
        if opened is not None or ident is None:
            return opened
        try:
            rotated = sorted(p for p in self.path.parent.iterdir() if p.name.startswith(self.path.name + ".")
                             or p.name.startswith(self.path.name + "-"))
        except FileNotFoundError:
            return None
        for p in rotated:
            opened = self._open_matching(p, ident)
            if opened is not None:
                return opened
        return None

    @staticmethod
    def _open_matching(path: Path, ident: tuple[int, int] | None) -> tuple[BinaryIO, tuple[int, int]] | None:
        """``path`` opened, if it is the file ``ident`` (any file when ``ident`` is None)."""
        try:
            f = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError):
            return None
        st = os.fstat(f.fileno())
        if ident is None or (st.st_dev, st.st_ino) == ident:
            return f, (st.st_dev, st.st_ino)
        f.close()
        return None

    def _follow(self, checkpoint: str | None) -> tuple[BinaryIO, tuple[int, int], int, str | None] | None:
        """The file to read, where, and the fingerprint to check again after reading: the checkpoint's file
        (even renamed), else the file at the path.

        A checkpoint is ``<device>:<inode>:<offset>:<fingerprint>`` (a bare offset, as older versions
        wrote, means the file at the path). A file that shrank below the offset, or whose bytes before the
        offset changed (copy-and-truncate, then refilled), is read from the start again.
        """
        ident: tuple[int, int] | None = None
        offset, tail = 0, None
        parts = (checkpoint or "").split(":")
        if len(parts) == 4 and all(x.isdigit() for x in parts[:3]):
            ident, offset, tail = (int(parts[0]), int(parts[1])), int(parts[2]), parts[3]
        elif checkpoint and checkpoint.isdigit():
            offset = int(checkpoint)
        if self._file is not None and ident is not None and self._file[1] != ident:
            self._close_file()
        if self._file is None:
            opened = self._open(ident)
            if opened is None and ident is not None:
                log.warning("file source %s: the file it was reading (inode %d) is gone; lines written to it "
                            "after byte %d are lost; reading %s from the start", self.id, ident[1], offset, self.path)
                self.restarts += 1
                ident, offset, tail = None, 0, None
                opened = self._open(None)
            if opened is None:
                return None
            self._file = opened
        f, ident = self._file
        self._file_key = ident
        if offset > self._size(f) or (tail is not None and offset and self._tail(f, offset) != tail):
            log.warning("file source %s: %s was truncated or rewritten, reading it from the start", self.id, self.path)
            self.restarts += 1
            offset, tail = 0, None
        return f, ident, offset, tail

    def _read(self, f: BinaryIO, offset: int, max_events: int) -> tuple[list[dict[str, Any]], int]:
        """Complete lines from ``offset`` on, at most ``max_events`` events; returns them and the new offset."""
        events: list[dict[str, Any]] = []
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
        return events, offset

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
        self._close_file()


class FileActor:
    config_model = FileActorConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        cfg = FileActorConfig.model_validate(config)
        self.id = actor_id
        self.path = (base_dir / cfg.path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = cfg.fsync
        self.include_prompt = cfg.include_prompt
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
