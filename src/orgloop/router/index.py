"""Find every route an event matches, at a cost that does not grow with the number of routes.

A route names a ``source`` (an exact id, ``"*"``, or a glob such as ``"github-*"``) and its
``events`` (a list of event types, each exact, ``"*"`` or a glob; empty or ``None`` means any).
Routes without globs are filed in a dict under (source or ``*``, type or ``*``), so an event
needs four lookups: (source, type), (source, *), (*, type), (*, *). Glob routes are tried one by
one. Either way the answer for a (source, type) pair is computed once, at the first event of that pair,
and cached until an ``add`` or ``remove`` that can change it (one of the same source, or one with a
wildcard source), so the steady-state cost per event is one dict lookup and one string comparison.

The cache is laid out for tables of many thousands of routes, where most of it is out of the CPU's
caches when an event comes: one entry per source, ``(type, answer, other types or None)``, so a source
seen with one event type costs one entry and no inner dict; and it is keyed by the string object of the
first event that asked, so that the later events of a source that reuses its id string (as a connector
does) find their entry by identity, without reading a key string that lives elsewhere in memory.

Matches come back in the order the routes were added (fan-out goes to every one of them), as a
tuple shared between callers: do not try to change it.

>>> index = RouteIndex()
>>> index.add("all-github", "github-*", None, "A")
>>> index.add("prs", "github-main", ["pull_request.opened"], "B")
>>> index.add("audit", "*", ["*"], "C")
>>> index.match("github-main", "pull_request.opened")
('A', 'B', 'C')
>>> index.match("cron", "tick")
('C',)
"""
from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import translate
from typing import Generic, TypeVar

__all__ = ["RouteIndex", "ANY"]

V = TypeVar("V")
ANY = "*"
_GLOB_CHARS = frozenset("*?[")


def _is_glob(text: str) -> bool:
    return text != ANY and not _GLOB_CHARS.isdisjoint(text)


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern))  # fnmatch semantics, case-sensitive


@dataclass(frozen=True)
class _Route(Generic[V]):
    seq: int              # insertion order
    name: str
    source: str
    events: tuple[str, ...]  # () = any type
    value: V


class _GlobRoute(Generic[V]):
    """A route with a glob somewhere, its patterns compiled once."""

    __slots__ = ("route", "_source", "_exact_types", "_type_globs", "_any_type")

    def __init__(self, route: _Route[V]) -> None:
        self.route = route
        self._source = None if route.source == ANY else _glob(route.source)
        self._any_type = not route.events or ANY in route.events
        self._exact_types = frozenset(e for e in route.events if not _is_glob(e))
        self._type_globs = tuple(_glob(e) for e in route.events if _is_glob(e))

    def matches(self, source: str, event_type: str) -> bool:
        if self._source is not None and self._source.fullmatch(source) is None:
            return False
        return (self._any_type or event_type in self._exact_types
                or any(g.fullmatch(event_type) for g in self._type_globs))


class RouteIndex(Generic[V]):
    """Routes by (source, event type), with wildcards and globs; safe to share between threads.

    ``match`` takes no lock when the answer is cached; ``add``/``remove`` and cache misses
    serialise on one lock.
    """

    def __init__(self, max_cached_pairs: int = 100_000) -> None:
        self._routes: dict[str, _Route[V]] = {}
        self._keyed: dict[tuple[str, str], list[_Route[V]]] = {}
        self._globbed: list[_GlobRoute[V]] = []
        # source -> (type, values, {other type: values} or None); see the module docstring
        self._cache: dict[str, tuple[str, tuple[V, ...], dict[str, tuple[V, ...]] | None]] = {}
        self._cached_pairs = 0
        self._max_cached_pairs = max_cached_pairs
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, name: object) -> bool:
        return name in self._routes

    def add(self, name: str, source: str, events: Sequence[str] | None, value: V) -> None:
        """File a route. ``events`` empty or ``None`` means every type. Names must be unique."""
        name, source, types = _text("route name", name), _text("source", source), _event_list(events)
        with self._lock:
            if name in self._routes:
                raise ValueError(f"route {name!r} is already in the index; remove it first")
            route = _Route(next(self._seq), name, source, types, value)
            self._routes[name] = route
            keys = self._keys(route)
            if keys is None:
                self._globbed.append(_GlobRoute(route))
            for key in keys or ():
                self._keyed.setdefault(key, []).append(route)
            self._invalidate(route)

    def remove(self, name: str) -> V:
        """Take a route out of the index and return its value."""
        with self._lock:
            route = self._routes.pop(name, None)
            if route is None:
                raise KeyError(f"no route named {name!r} in the index")
            keys = self._keys(route)
            if keys is None:
                self._globbed = [g for g in self._globbed if g.route is not route]
            for key in keys or ():
                bucket = [r for r in self._keyed[key] if r is not route]
                if bucket:
                    self._keyed[key] = bucket
                else:
                    del self._keyed[key]
            self._invalidate(route)
            return route.value

    def match(self, source: str, event_type: str) -> tuple[V, ...]:
        """Values of every route matching ``(source, event_type)``, in insertion order."""
        entry = self._cache.get(source)
        if entry is not None:
            if entry[0] == event_type:
                return entry[1]
            others = entry[2]
            if others is not None:
                hit = others.get(event_type)
                if hit is not None:
                    return hit
        return self._resolve(source, event_type)

    def match_many(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[V, ...]]:
        """``match`` for a batch of ``(source, event_type)`` pairs."""
        match = self.match
        return [match(source, event_type) for source, event_type in pairs]

    @property
    def cached_pairs(self) -> int:
        """How many (source, type) answers are cached now."""
        return self._cached_pairs

    # --- internals ---------------------------------------------------------------------------------

    @staticmethod
    def _keys(route: _Route[V]) -> list[tuple[str, str]] | None:
        """The dict keys a route is filed under, or ``None`` if it has a glob and goes in the list."""
        if _is_glob(route.source) or any(_is_glob(e) for e in route.events):
            return None
        if not route.events or ANY in route.events:
            return [(route.source, ANY)]
        return [(route.source, e) for e in route.events]

    def _resolve(self, source: str, event_type: str) -> tuple[V, ...]:
        with self._lock:
            keyed = self._keyed
            buckets = [b for b in (keyed.get((source, event_type)), keyed.get((source, ANY)),
                                   keyed.get((ANY, event_type)), keyed.get((ANY, ANY))) if b]
            if len(buckets) == 1 and not self._globbed:
                values = tuple(r.value for r in buckets[0])   # a bucket is in insertion order already
            else:
                found: dict[int, _Route[V]] = {}
                for bucket in buckets:
                    for route in bucket:
                        found[route.seq] = route  # keyed by seq: a literal "*" source may hit a bucket twice
                for g in self._globbed:
                    if g.matches(source, event_type):
                        found[g.route.seq] = g.route
                values = tuple(found[seq].value for seq in sorted(found))
            if self._cached_pairs >= self._max_cached_pairs:
                self._invalidate(None)  # a crude bound: distinct pairs are few in practice
            entry = self._cache.get(source)
            if entry is None:
                self._cache[source] = (event_type, values, None)
            elif entry[0] != event_type and (entry[2] is None or event_type not in entry[2]):
                # a new tuple and a new dict, never changed in place: match() reads them without the lock
                self._cache[source] = (entry[0], entry[1], {**(entry[2] or {}), event_type: values})
            else:
                return values           # another thread cached it meanwhile
            self._cached_pairs += 1
            return values

    def _invalidate(self, route: _Route[V] | None) -> None:
        """Forget cached answers that ``route`` (added or removed) may change; ``None``: all of them.

        A route with an exact source can only change the answers for that source; one with ``*`` or a
        glob as its source can change any answer.
        """
        if route is not None and route.source != ANY and not _is_glob(route.source):
            dropped = self._cache.pop(route.source, None)
            if dropped is not None:
                self._cached_pairs -= 1 + len(dropped[2] or ())
            return
        self._cache.clear()
        self._cached_pairs = 0


def _text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def _event_list(events: Sequence[str] | None) -> tuple[str, ...]:
    if events is None:
        return ()
    if isinstance(events, str) or not isinstance(events, (list, tuple)):
        raise TypeError(f"events must be a list of event types (or None for any), not {events!r}")
    return tuple(dict.fromkeys(_text("event type", e) for e in events))
