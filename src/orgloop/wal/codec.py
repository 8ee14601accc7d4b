"""Event codecs for the WAL's two encodings (msgpack is inline in ``log.py``; JSON lives here)."""
from __future__ import annotations

import json
from typing import Any, Iterable

__all__ = ["encode_json_many", "decode_json_many"]

_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json_many(events: Iterable[Any]) -> list[bytes]:
    """Compact single-line JSON (newlines inside strings are escaped by JSON itself)."""
    enc = _encoder.encode
    return [enc(e).encode() for e in events]


def decode_json_many(records: list[bytes]) -> list[Any]:
    loads = json.loads
    return [loads(r) for r in records]
