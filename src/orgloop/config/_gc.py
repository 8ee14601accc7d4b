"""Keeping the cyclic garbage collector out of the way while a project is loaded and checked.

Loading a project allocates hundreds of thousands of small containers, none of them in a cycle. With the
collector running, it walks them again and again for nothing: more than half of the time at 10,000
routes, growing faster than the project. Reference counting frees everything as usual either way.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

__all__ = ["cyclic_gc_paused"]


@contextmanager
def cyclic_gc_paused(*, freeze: bool = False) -> Iterator[None]:
    """Pause the collector inside the block (nesting is fine; the outermost block restores it).

    With ``freeze=True`` (for a command that loads its project at start and keeps it): collect the
    garbage there is first, and at the end move everything alive to the permanent generation
    (``gc.freeze``), so the collector never walks the loaded project afterwards either. Cycles that
    become garbage later are collected as usual."""
    enabled = gc.isenabled()
    if freeze and enabled:
        gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if freeze:
                gc.freeze()
            gc.enable()
