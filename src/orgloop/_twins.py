"""Choose between a compiled module and its pure-Python twin.

Every compiled hot path in orgloop (``wal._wal``, ``queues._queue``) has a pure-Python
twin with the same API and the same bytes on disk. This module is the *only* place that
decides which one is live, following msgpack's ``MSGPACK_PUREPYTHON`` habit:

* ``ORGLOOP_PUREPYTHON=1`` forces the pure twins everywhere.
* ``ORGLOOP_REQUIRE_COMPILED=1`` turns a failed compiled import into an error (CI sets it,
  so a broken build can never pass green on the fallback alone).
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["Twins", "load_twins", "force_pure", "require_compiled"]


def force_pure() -> bool:
    return os.environ.get("ORGLOOP_PUREPYTHON", "") not in ("", "0")


def require_compiled() -> bool:
    return os.environ.get("ORGLOOP_REQUIRE_COMPILED", "") not in ("", "0")


class Twins:
    """Both implementations of one module, and which one is live."""

    def __init__(self, compiled: ModuleType | None, pure: ModuleType, compiled_error: str | None):
        self.compiled = compiled
        self.pure = pure
        self.compiled_error = compiled_error
        self.active = pure if (compiled is None or force_pure()) else compiled

    @property
    def name(self) -> str:
        return "compiled" if self.active is self.compiled else "pure"

    def get(self, implementation: str | None) -> ModuleType:
        """Return ``compiled``, ``pure`` or (``None``) the live module."""
        if implementation is None:
            return self.active
        if implementation == "pure":
            return self.pure
        if implementation == "compiled":
            if self.compiled is None:
                raise ImportError(f"the compiled module is not available: {self.compiled_error}")
            return self.compiled
        raise ValueError(f"implementation must be 'compiled' or 'pure', not {implementation!r}")


def load_twins(compiled_name: str, pure_name: str) -> Twins:
    pure = importlib.import_module(pure_name)
    compiled: ModuleType | None = None
    error: str | None = None
    try:
        compiled = importlib.import_module(compiled_name)
    except ImportError as exc:
        error = str(exc)
        if require_compiled():
            raise ImportError(
                f"ORGLOOP_REQUIRE_COMPILED is set but {compiled_name} could not be imported: {exc}. "
                "Build it with `pip install -e .` (needs a C compiler and Cython)."
            ) from exc
    return Twins(compiled, pure, error)
