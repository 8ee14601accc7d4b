"""Strict parsing of the durations, rates and sizes that project files use.

>>> parse_duration("500ms"), parse_duration("2m")
(0.5, 120.0)
>>> parse_rate("100/s"), parse_rate("10/min")
(100.0, 0.16666666666666666)
>>> parse_size("100MB")
104857600
"""
from __future__ import annotations

import re

__all__ = ["UnitError", "parse_duration", "parse_rate", "parse_size", "DURATION_PATTERN", "RATE_PATTERN"]


class UnitError(ValueError):
    """A duration, rate or size string is malformed."""


DURATION_PATTERN = r"^(\d+)(ms|s|m|h|d)$"
_DURATION = re.compile(DURATION_PATTERN)
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
RATE_PATTERN = r"^(\d+(?:\.\d+)?)/(ms|s|sec|m|min|h|hour|d|day)$"
_RATE = re.compile(RATE_PATTERN)
_RATE_SECONDS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0,
                 "hour": 3600.0, "d": 86400.0, "day": 86400.0}
_SIZE = re.compile(r"^(\d+)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$")
_SIZE_FACTOR = {None: 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
                "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def parse_duration(text: str | int | float) -> float:
    """Parse ``500ms``, ``1s``, ``2m``, ``1h``, ``7d`` into seconds. Bare numbers are rejected."""
    if not isinstance(text, str):
        raise UnitError(f"duration must be a string such as '1s' or '500ms', not {text!r}")
    m = _DURATION.match(text.strip())
    if not m:
        raise UnitError(f"invalid duration {text!r}: expected a whole number and one of ms, s, m, h, d (e.g. '30s')")
    return int(m.group(1)) * _DURATION_SECONDS[m.group(2)]


def parse_rate(text: str) -> float:
    """Parse ``100/s``, ``10/min``, ``5/h`` into events per second (must be > 0)."""
    if not isinstance(text, str):
        raise UnitError(f"rate must be a string such as '100/s', not {text!r}")
    m = _RATE.match(text.strip())
    if not m:
        raise UnitError(f"invalid rate {text!r}: expected COUNT/UNIT with UNIT one of s, min, h, d (e.g. '100/s')")
    count = float(m.group(1))
    if count <= 0:
        raise UnitError(f"invalid rate {text!r}: the count must be greater than zero")
    return count / _RATE_SECONDS[m.group(2)]


def parse_size(text: str | int) -> int:
    """Parse ``100MB``, ``64KiB`` or a byte count into bytes (1024-based)."""
    if isinstance(text, bool):
        raise UnitError(f"size must be a number of bytes or a string such as '100MB', not {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise UnitError(f"size must not be negative: {text}")
        return text
    if not isinstance(text, str):
        raise UnitError(f"size must be a number of bytes or a string such as '100MB', not {text!r}")
    m = _SIZE.match(text.strip())
    if not m:
        raise UnitError(f"invalid size {text!r}: expected a whole number and one of B, KB, MB, GB, TB (e.g. '100MB')")
    return int(m.group(1)) * _SIZE_FACTOR[m.group(2)]
