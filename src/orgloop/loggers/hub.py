"""The log hub: pipeline threads hand it entries; one thread writes them to every configured logger.

Nothing is built per event unless a logger is configured (the runtime passes ``emit=None`` then), so
logging costs nothing on the hot path by default. Entries are never dropped silently: past
``max_pending`` waiting entries, ``emit`` waits for the writer (backpressure on the pipeline thread) for up
to ``max_wait`` seconds; only a writer stuck that long makes it drop the oldest entries (without waiting
again until the writer finishes a batch), which are counted
in ``dropped`` (``orgloop_log_entries_dropped_total`` in ``/metrics``) and reported by a ``logger.dropped``
warning entry and a log line. Entries are completed here: every field of
``ENTRY_FIELDS`` is present (``None`` when it does not apply), and timestamp, orgloop_version, hostname
and workspace are filled once per batch (an entry's own timestamp wins).
"""
from __future__ import annotations

import collections
import logging
import socket
import threading
from typing import Any

from orgloop import __version__
from orgloop.event import now_iso
from orgloop.loggers import ENTRY_FIELDS

__all__ = ["LogHub"]

log = logging.getLogger("orgloop.loggers")


class LogHub:
    def __init__(self, loggers: list[Any], workspace: str, *, flush_interval: float = 0.1,
                 max_pending: int = 100_000, max_wait: float = 5.0) -> None:
        self.loggers = loggers
        self.workspace = workspace
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        self._max_pending = max_pending
        self._max_wait = max_wait
        lock = threading.Lock()
        self._cv = threading.Condition(lock)
        self._room = threading.Condition(lock)   # the writer took a batch: waiting emitters may go on
        self.dropped = 0
        self._dropped_unreported = 0
        self._stuck = False
        self._stop = False
        self._interval = flush_interval
        self._host = socket.gethostname()
        self._thread = threading.Thread(target=self._run, name="orgloop-loggers", daemon=True)
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def emit(self, entries: list[dict[str, Any]]) -> None:
        """Queue entries (thread-safe). Waits while ``max_pending`` entries are queued (see the module doc)."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            with self._cv:
                self._cv.notify()
                if self._stuck or not self._room.wait_for(
                        lambda: len(pending) < self._max_pending or self._stop, self._max_wait):
                    self._stuck = True       # no more waiting until the writer finishes a batch
                    over = len(pending) + len(entries) - self._max_pending
                    for _ in range(min(over, len(pending))):
                        pending.popleft()
                    self.dropped += over
                    self._dropped_unreported += over
        pending.extend(entries)
        if len(pending) >= 1000:
            with self._cv:
                self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._stop:
                    self._cv.wait(self._interval)
                stopping = self._stop
            self._flush()
            if stopping:
                return

    def _flush(self) -> None:
        batch = []
        pending = self._pending
        while pending:
            batch.append(pending.popleft())
        with self._cv:
            self._room.notify_all()
            dropped, self._dropped_unreported = self._dropped_unreported, 0
        if dropped:
            log.warning("loggers could not keep up: %d log entries were dropped", dropped)
            batch.append({"phase": "logger.dropped", "result": "dropped", "error": "loggers could not keep up",
                          "metadata": {"count": dropped}})
        if not batch:
            return
        common = {"timestamp": now_iso(), "orgloop_version": __version__, "hostname": self._host,
                  "workspace": self.workspace}
        blank = dict.fromkeys(ENTRY_FIELDS)
        for i, entry in enumerate(batch):   # every entry carries every field, in the spec's order
            batch[i] = {**blank, **common, **entry}
        for lg in self.loggers:
            try:
                lg.log_many(batch)
            except Exception:  # a broken logger must not stop the pipeline
                log.exception("logger %r failed", lg)
        self.written += len(batch)
        self._stuck = False

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join()
        else:
            self._flush()
        for lg in self.loggers:
            try:
                lg.close()
            except Exception:
                log.exception("closing logger %r failed", lg)
