"""Argument checks shared by the delivery primitives (one wording for every bad value)."""
from __future__ import annotations

import math


def positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def number(name: str, value: object, *, minimum: float = 0.0, strictly_above: bool = False,
           maximum: float = math.inf) -> float:
    """A finite number in [minimum, maximum] (or (minimum, maximum] when ``strictly_above``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    low_ok = value > minimum if strictly_above else value >= minimum
    if not (math.isfinite(value) and low_ok and value <= maximum):
        bound = f"greater than {minimum:g}" if strictly_above else f"at least {minimum:g}"
        if maximum != math.inf:
            bound += f" and at most {maximum:g}"
        raise ValueError(f"{name} must be a finite number {bound}, not {value!r}")
    return float(value)


def known_keys(what: str, spec: dict, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} setting(s) {', '.join(map(repr, unknown))}; "
                         f"expected some of {', '.join(allowed)}")
