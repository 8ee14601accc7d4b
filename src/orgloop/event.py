"""The event envelope (``orgloop/v1alpha1``), as plain dicts.

Events travel as dicts so that the hot path pays no per-event object cost; this module builds and
checks them. Unknown top-level keys survive a round trip. The WAL sequence number travels beside the
event (in a delivery token), never inside it.

>>> e = new_event("github", "resource.changed", {"pr": 1}, provenance={"platform": "github"})
>>> e["id"].startswith("evt_") and e["trace_id"].startswith("trc_")
True
>>> follow_up(e, "agent", "actor.stopped")["trace_id"] == e["trace_id"]
True
>>> adopt(e, {"type": "actor.stopped", "trace_id": "trc_0000000000000000"}, source="agent")["trace_id"] == e["trace_id"]
True
"""
from __future__ import annotations

import json
import os
import re

import xxhash
from datetime import datetime, timezone
from typing import Any

from orgloop.errors import OrgloopError

__all__ = ["EVENT_TYPES", "AUTHOR_TYPES", "EventError", "new_event_id", "natural_event_id", "new_trace_id", "now_iso",
           "new_event", "follow_up", "adopt", "validate_event", "MAX_DEPTH", "loads_strict",
           "check_encodable", "MISSING", "get_path"]

MISSING: Any = object()
"""What :func:`get_path` returns where a dot-path leads nowhere (distinct from a ``None`` value)."""


def get_path(event: Any, path: str | tuple[str, ...]) -> Any:
    """The value at a dot-path of an event (``payload.pr.number``, or its parts), or :data:`MISSING`."""
    for part in (path.split(".") if isinstance(path, str) else path):
        if isinstance(event, dict) and part in event:
            event = event[part]
        else:
            return MISSING
    return event


EVENT_TYPES = ("resource.changed", "actor.stopped", "message.received")
AUTHOR_TYPES = ("team_member", "external", "bot", "system", "unknown")
_EVENT_ID = re.compile(r"^evt_[0-9a-f]{16}$")
_TRACE_ID = re.compile(r"^trc_[0-9a-f]{16}$")
MAX_DEPTH = 100                      # nesting levels an event may have (objects and arrays)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 64) - 1   # what msgpack (and most JSON readers) can hold


class EventError(OrgloopError, ValueError):
    """An object is not a valid event envelope."""


def new_event_id() -> str:
    return "evt_" + os.urandom(8).hex()


def natural_event_id(source_id: str, *key: str | int | bytes) -> str:
    """A deterministic id: ``evt_`` + xxh3_64 over the source id and the event's natural key.

    Reading the same thing twice (a file line after a crash, a webhook redelivery, a cron fire) gives the
    same id, so dedup can recognise it. Key parts are joined unambiguously (length-prefixed).

    >>> natural_event_id("gh", "delivery-1") == natural_event_id("gh", "delivery-1")
    True
    >>> natural_event_id("gh", "a", "bc") != natural_event_id("gh", "ab", "c")
    True
    """
    h = xxhash.xxh3_64()
    for part in (source_id, *key):
        raw = part if isinstance(part, bytes) else str(part).encode("utf-8", "surrogatepass")
        h.update(len(raw).to_bytes(8, "little"))
        h.update(raw)
    return "evt_" + h.hexdigest()


def new_trace_id() -> str:
    return "trc_" + os.urandom(8).hex()


def now_iso() -> str:
    """The current time as ISO-8601 UTC with millisecond precision and a ``Z`` suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_event(source: str, type: str, payload: dict[str, Any] | None = None, *,
              provenance: dict[str, Any] | None = None, trace_id: str | None = None,
              module: str | None = None) -> dict[str, Any]:
    """Build a fresh event envelope with a new id, the current timestamp and a trace id."""
    event: dict[str, Any] = {
        "id": new_event_id(),
        "timestamp": now_iso(),
        "source": source,
        "type": type,
        "provenance": provenance if provenance is not None else {"platform": source},
        "payload": payload if payload is not None else {},
        "trace_id": trace_id or new_trace_id(),
    }
    if module is not None:
        event["module"] = module
    return event


def follow_up(cause: dict[str, Any], source: str, type: str, payload: dict[str, Any] | None = None,
              **kwargs: Any) -> dict[str, Any]:
    """An event caused by ``cause`` (e.g. an actor's output): it keeps the cause's trace id."""
    return new_event(source, type, payload, trace_id=cause.get("trace_id"), **kwargs)


def adopt(cause: dict[str, Any], obj: Any, *, source: str) -> dict[str, Any]:
    """Make ``obj`` (an event an actor produced while handling ``cause``) a valid follow-up of ``cause``.

    It always takes the cause's trace id (so the causal chain can be followed); ``source`` and
    ``provenance`` default to the producing actor; the rest is filled and checked as by
    :func:`validate_event`, whose :class:`EventError` it raises.
    """
    if not isinstance(obj, dict):
        raise EventError(f"a follow-up event must be a JSON object, not {type(obj).__name__}")
    event = dict(obj)
    event.setdefault("source", source)
    event.setdefault("provenance", {"platform": source})
    event["trace_id"] = cause.get("trace_id") or new_trace_id()
    return validate_event(event)


def validate_event(obj: Any, *, fill: bool = True) -> dict[str, Any]:
    """Check an envelope; with ``fill`` set missing ``id``/``timestamp``/``trace_id``/``payload``.

    Raises :class:`EventError` naming the first offending field. Returns the (same) dict.
    """
    if not isinstance(obj, dict):
        raise EventError(f"an event must be a JSON object, not {type(obj).__name__}")
    if fill:
        obj.setdefault("id", new_event_id())
        obj.setdefault("timestamp", now_iso())
        obj.setdefault("payload", {})
        if not obj.get("trace_id"):
            obj["trace_id"] = new_trace_id()
    for key in ("source", "type"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise EventError(f"event field {key!r} must be a non-empty string")
    if obj["type"] not in EVENT_TYPES:
        raise EventError(f"event type {obj['type']!r} is not one of {', '.join(EVENT_TYPES)}")
    if not isinstance(obj.get("id"), str) or not _EVENT_ID.match(obj["id"]):
        raise EventError(f"event id {obj.get('id')!r} must be 'evt_' followed by 16 hex characters")
    if not isinstance(obj.get("trace_id"), str) or not _TRACE_ID.match(obj["trace_id"]):
        raise EventError(f"trace_id {obj.get('trace_id')!r} must be 'trc_' followed by 16 hex characters")
    if not isinstance(obj.get("timestamp"), str):
        raise EventError("event field 'timestamp' must be an ISO-8601 string")
    try:
        datetime.fromisoformat(obj["timestamp"].replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"event timestamp {obj['timestamp']!r} is not ISO-8601") from None
    prov = obj.get("provenance")
    if not isinstance(prov, dict) or not isinstance(prov.get("platform"), str):
        raise EventError("event field 'provenance' must be an object with a 'platform' string")
    if "author_type" in prov and prov["author_type"] not in AUTHOR_TYPES:
        raise EventError(f"provenance.author_type {prov['author_type']!r} is not one of {', '.join(AUTHOR_TYPES)}")
    if not isinstance(obj.get("payload"), dict):
        raise EventError("event field 'payload' must be an object")
    return obj


def _no_constant(name: str) -> Any:
    raise EventError(f"{name} is not a JSON number (NaN and Infinity are refused)")


def loads_strict(data: bytes | str) -> Any:
    """Parse one JSON document as an event source must: UTF-8, no NaN/Infinity, and
    :func:`check_encodable` on the result. Raises :class:`EventError` with the reason.

    >>> loads_strict(b'{"a": [1, 2.5, "x"]}')
    {'a': [1, 2.5, 'x']}
    >>> loads_strict(b'{"a": NaN}')
    Traceback (most recent call last):
    orgloop.event.EventError: NaN is not a JSON number (NaN and Infinity are refused)
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"invalid UTF-8 at byte {exc.start} of the line") from None
    try:
        obj = json.loads(data, parse_constant=_no_constant)
    except RecursionError:
        raise EventError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if isinstance(exc, EventError):
            raise
        raise EventError(f"invalid JSON: {exc}") from None
    check_encodable(obj)
    return obj


def check_encodable(obj: Any) -> None:
    """Raise :class:`EventError` unless ``obj`` can be stored and read back as JSON and msgpack alike:
    nesting at most :data:`MAX_DEPTH`, integers within 64 bits, finite floats, valid Unicode strings
    (no lone surrogates), string keys. Iterative, so deep input cannot exhaust the stack."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is str:
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise EventError("a string holds a lone surrogate, which is not valid Unicode") from None
        elif kind is int:
            if not _INT_MIN <= value <= _INT_MAX:
                raise EventError("an integer does not fit in 64 bits")
        elif kind is float:
            if value != value or value in (float("inf"), float("-inf")):
                raise EventError("NaN and Infinity are not JSON numbers")
        elif kind is dict or kind is list:
            if depth > MAX_DEPTH:
                raise EventError(f"nested deeper than {MAX_DEPTH} levels")
            if kind is dict:
                for key, item in value.items():
                    if type(key) is not str:
                        raise EventError(f"an object key is {type(key).__name__}, not a string")
                    stack.append((key, depth))
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif value is not None and kind is not bool:
            raise EventError(f"a value of type {kind.__name__} cannot be stored in an event")
