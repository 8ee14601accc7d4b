"""Event codecs for the WAL's two encodings (msgpack is inline in ``log.py``; JSON lives here).

A JSONL log holds exactly one UTF-8 JSON value per record, on one line: events are encoded that way,
and raw appends are checked with :func:`json_record_error`.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

__all__ = ["encode_json_many", "decode_json_many", "json_record_error"]

# allow_nan=False: NaN and Infinity are not JSON; ensure_ascii=False keeps text readable (still UTF-8).
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json_many(events: Iterable[Any]) -> list[bytes]:
    """Compact single-line JSON (newlines inside strings are escaped by JSON itself)."""
    enc = _encoder.encode
    return [enc(e).encode() for e in events]


def decode_json_many(records: list[bytes]) -> list[Any]:
    loads = json.loads
    return [loads(r) for r in records]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_record_error(raw: bytes) -> str | None:
    """Why ``raw`` is not one UTF-8 JSON value on one line, or None if it is."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 ({exc.reason} at byte {exc.start})"
    if "\n" in text:
        return "contains a newline (a JSONL record is one line)"
    try:
        json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        return f"not one JSON value ({exc})"
    return None
