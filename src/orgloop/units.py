"""Strict parsing of the durations, rates and sizes that project files use (``docs/configuration.md``).

The whole string must match: no surrounding spaces, no sign, no fraction.

* duration: a whole number and ``ms``, ``s``, ``m``, ``h`` or ``d`` (``500ms``, ``30s``, ``7d``);
* rate: a whole number of at least 1, ``/``, and ``s``, ``min`` or ``h`` (``100/s``, ``10/min``, ``5/h``);
* size: a whole number of bytes, or one with ``B``, ``KB``, ``MB``, ``GB``, ``TB`` (1024-based; ``KiB``...
  are accepted as the same).

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


# JSON Schema patterns (the ``$`` there is the end of the string: ECMA regexes have no trailing-newline rule);
# Python matches with ``fullmatch`` and ASCII digits only.
DURATION_PATTERN = r"^([0-9]+)(ms|s|m|h|d)$"
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
RATE_PATTERN = r"^([1-9][0-9]*)/(s|min|h)$"
_RATE = re.compile(r"([1-9][0-9]*)/(s|min|h)")
_RATE_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_SIZE = re.compile(r"([0-9]+)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?")
_SIZE_FACTOR = {None: 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4,
                "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}


def parse_duration(text: str | int | float) -> float:
    """Parse ``500ms``, ``1s``, ``2m``, ``1h``, ``7d`` into seconds. Bare numbers are rejected."""
    if not isinstance(text, str):
        raise UnitError(f"duration must be a string such as '1s' or '500ms', not {text!r}")
    m = _DURATION.fullmatch(text)
    if not m:
        raise UnitError(f"invalid duration {text!r}: expected a whole number and one of ms, s, m, h, d (e.g. '30s')")
    return int(m.group(1)) * _DURATION_SECONDS[m.group(2)]


def parse_rate(text: str) -> float:
    """Parse ``100/s``, ``10/min``, ``5/h`` into events per second."""
    if not isinstance(text, str):
        raise UnitError(f"rate must be a string such as '100/s', not {text!r}")
    m = _RATE.fullmatch(text)
    if not m:
        raise UnitError(f"invalid rate {text!r}: expected a whole number of at least 1, '/', and one of s, min, h "
                        "(e.g. '100/s', '10/min')")
    return int(m.group(1)) / _RATE_SECONDS[m.group(2)]


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
    m = _SIZE.fullmatch(text)
    if not m:
        raise UnitError(f"invalid size {text!r}: expected a whole number and one of B, KB, MB, GB, TB (e.g. '100MB')")
    return int(m.group(1)) * _SIZE_FACTOR[m.group(2)]
