"""Helpers for the polling-source tests: drain a source, and close the sources a test opened."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, TypeVar

S = TypeVar("S")
_open: list[Any] = []


def drain(src: Any, cp: str | None, max_events: int = 1000) -> tuple[list[dict[str, Any]], str | None]:
    """Poll until a poll returns no events; returns (events, checkpoint)."""
    out: list[dict[str, Any]] = []
    while True:
        events, cp = src.poll(cp, max_events)
        if not events:
            return out, cp
        out.extend(events)


def opened(src: S) -> S:
    """Register a source to be closed when the fake API of :func:`serving` stops."""
    _open.append(src)
    return src


@contextmanager
def serving(fake: ContextManager[S]) -> Iterator[S]:
    """Run a fake API; on the way out close every source registered with :func:`opened`, then stop it."""
    with fake as running:
        yield running
        while _open:
            _open.pop().close()
