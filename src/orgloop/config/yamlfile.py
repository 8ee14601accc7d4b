"""Read one YAML file into plain values, keeping what is needed to point at a line and column later.

Values are built straight from the parser's event stream (PyYAML's libyaml parser when available):
building a node tree for every file would cost several times more, and positions are only needed when a
problem is reported. The node tree is therefore composed lazily, the first time a position is asked for,
and walked along the problem's path.

Plain scalars are resolved by the YAML 1.2 core schema, as OrgLoop's own loader (js-yaml 4) does:
only ``true``/``false`` are booleans (``yes``, ``on``, ``no``, ``off`` stay strings), ``~``, ``null`` and
an empty value are null, integers are decimal, ``0o`` octal or ``0x`` hex, ``12:30`` and ``2024-01-02``
stay strings. Explicit tags (``!!str``, ``!!int``...), anchors, aliases and ``<<`` merge keys work as
in ``yaml.safe_load``. A file holds at most one document, an alias may not refer to its own enclosing
node, and duplicate keys in a mapping, which YAML would silently collapse, are recorded so the loader
can report them.

Limits, each a :class:`YamlSyntaxError` at the file, line and column where it is crossed, so that no file
can exhaust memory or the stack (an alias "bomb" is tiny as text and huge once expanded):

* :data:`MAX_DOCUMENT_CHARS` characters per file;
* :data:`MAX_DEPTH` levels of nested mappings and sequences;
* :data:`MAX_ALIAS_NODES` nodes reached through aliases (merge keys included), on top of the file's own
  nodes: a file may repeat itself through aliases, but not by orders of magnitude.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import yaml
from yaml.constructor import ConstructorError
from yaml.events import (AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent,
                         SequenceStartEvent, StreamEndEvent)

__all__ = ["Position", "YamlDocument", "YamlSyntaxError", "load_yaml", "MAX_DOCUMENT_CHARS", "MAX_DEPTH",
           "MAX_ALIAS_NODES"]

MAX_DOCUMENT_CHARS = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_ALIAS_NODES = 100_000

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MAP = {None, "!", "tag:yaml.org,2002:map"}
_SEQ = {None, "!", "tag:yaml.org,2002:seq"}
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = {".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"), "+.inf": float("inf"),
                  "+.Inf": float("inf"), "+.INF": float("inf"), "-.inf": float("-inf"), "-.Inf": float("-inf"),
                  "-.INF": float("-inf"), ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan")}


def _plain(text: str) -> Any:
    """The value of an untagged plain scalar under the YAML 1.2 core schema."""
    if text in _NULL:
        return None
    if text[0] not in "0123456789+-.tTfF":
        return text
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    return _SPECIAL_FLOAT.get(text, text)


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a file."""

    line: int
    column: int


class YamlSyntaxError(ValueError):
    """The file is not well-formed YAML (or holds several documents)."""

    def __init__(self, message: str, position: Position) -> None:
        super().__init__(message)
        self.position = position


def _position(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


class _Builder:
    """Turns the parser's events into Python values, recording duplicate keys."""

    def __init__(self, text: str) -> None:
        self.loader = _Loader(text)
        self.anchors: dict[str, tuple[Any, int]] = {}      # anchor -> (value, its nodes, aliases expanded)
        self.duplicates: list[tuple[str, Position]] = []
        self.nodes = 0                                      # nodes built, aliases counted expanded
        self.alias_nodes = 0                                # of which reached through aliases
        self.depth = 0

    def document(self) -> Any:
        get, check = self.loader.get_event, self.loader.check_event
        get()                                              # StreamStartEvent
        if check(StreamEndEvent):
            return None
        get()                                              # DocumentStartEvent
        value = self.value(get())
        get()                                              # DocumentEndEvent
        if not check(StreamEndEvent):
            event = self.loader.peek_event()
            raise YamlSyntaxError("YAML syntax error: the file holds several YAML documents; "
                                  "orgloop files hold exactly one", _position(event.start_mark))
        return value

    def value(self, event: Any) -> Any:
        """The value of the node that ``event`` starts (reading the rest of the node's events)."""
        kind = type(event)
        start = self.nodes
        self.nodes += 1
        if kind is ScalarEvent:
            value = self.scalar(event)
        elif kind is MappingStartEvent:
            self._require(event, _MAP, "mapping")
            self._enter(event)
            value = self.mapping()
            self.depth -= 1
        elif kind is SequenceStartEvent:
            self._require(event, _SEQ, "sequence")
            self._enter(event)
            value = []
            get = self.loader.get_event
            while type(item := get()) is not SequenceEndEvent:
                value.append(self.value(item))
            self.depth -= 1
        elif kind is AliasEvent:
            if event.anchor not in self.anchors:
                raise ConstructorError(None, None, f"found undefined alias {event.anchor!r} (an alias must "
                                       "follow its anchor and lie outside it)", event.start_mark)
            value, size = self.anchors[event.anchor]
            self.nodes += size - 1
            self.alias_nodes += size
            if self.alias_nodes > MAX_ALIAS_NODES + (self.nodes - self.alias_nodes):
                raise ConstructorError(None, None, f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes beyond "
                                       f"the file's own (at alias *{event.anchor}); orgloop refuses such "
                                       "alias bombs", event.start_mark)
            return value
        else:  # pragma: no cover - the parser guarantees a node here
            raise ConstructorError(None, None, f"unexpected {kind.__name__}", event.start_mark)
        if event.anchor is not None:
            self.anchors[event.anchor] = (value, self.nodes - start)
        return value

    def _enter(self, event: Any) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConstructorError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)

    def scalar(self, event: ScalarEvent) -> Any:
        tag, text = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return text                                # quoted: always a string
            return _plain(text)
        return text if tag == _STR else self._construct(tag, event)

    def _construct(self, tag: str, event: ScalarEvent) -> Any:
        constructors = self.loader.yaml_constructors
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return (constructors.get(tag) or constructors[None])(self.loader, node)

    @staticmethod
    def _require(event: Any, tags: set[str | None], what: str) -> None:
        if event.tag not in tags:
            raise ConstructorError(None, None, f"unsupported tag {event.tag!r} on a {what}", event.start_mark)

    def mapping(self) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        merged: list[tuple[Any, Any]] = []
        get = self.loader.get_event
        while type(key_event := get()) is not MappingEndEvent:
            if (type(key_event) is ScalarEvent and key_event.value == "<<" and key_event.tag is None
                    and key_event.implicit[0]):
                merged.append((self.value(get()), key_event.start_mark))
                continue
            key = self.value(key_event)
            try:
                present = key in out
            except TypeError:
                raise ConstructorError(None, None, "found an unhashable key (a mapping or list used as a key)",
                                       key_event.start_mark) from None
            if present:
                self.duplicates.append((str(key), _position(key_event.start_mark)))
            out[key] = self.value(get())
        for value, mark in merged:
            for source in (value if isinstance(value, list) else [value]):
                if not isinstance(source, dict):
                    raise ConstructorError(None, None, "a '<<' merge key takes a mapping or a list of mappings",
                                           mark)
                for k, v in source.items():
                    out.setdefault(k, v)
        return out


class YamlDocument:
    """A parsed file: its values, its duplicate keys, and positions of any path in it (on demand)."""

    def __init__(self, path: Path, data: Any, text: str, duplicates: list[tuple[str, Position]]) -> None:
        self.path = path
        self.data = data
        self.text = text
        self.duplicates = duplicates

    @cached_property
    def node(self) -> yaml.Node | None:
        """The file's node tree, composed the first time a position is needed."""
        return yaml.compose(self.text, Loader=_Loader)

    def position(self, loc: Sequence[Any], *, key: bool = False) -> Position:
        """Where the value at ``loc`` starts (or its key, with ``key=True``); the deepest existing ancestor
        when the path does not exist (a missing field points at the mapping that lacks it)."""
        node = self.node
        if node is None:
            return Position(1, 1)
        best = _position(node.start_mark)
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                        best = _position(k.start_mark if (last and key) else v.start_mark)
                        node = v
                        break
                else:
                    return best
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                best = _position(node.start_mark)
            else:
                return best
        return best


def load_yaml(path: Path, text: str | None = None) -> YamlDocument:
    """Parse ``path`` (or ``text`` as if read from it). Raises :class:`YamlSyntaxError` with a position
    (a file that is too large, too deep or an alias bomb among them), and ``OSError`` or
    ``UnicodeDecodeError`` when the file cannot be read as UTF-8."""
    if text is None:
        with open(path, "rb") as f:                       # never read more than the limit allows
            raw = f.read(MAX_DOCUMENT_CHARS * 4 + 1)
        # past 4 bytes a character the file is too large whatever it holds: decode only to place the error
        text = raw.decode("utf-8", "replace" if len(raw) > MAX_DOCUMENT_CHARS * 4 else "strict")
    if len(text) > MAX_DOCUMENT_CHARS:
        line = text.count("\n", 0, MAX_DOCUMENT_CHARS) + 1
        column = MAX_DOCUMENT_CHARS - text.rfind("\n", 0, MAX_DOCUMENT_CHARS)
        raise YamlSyntaxError(f"file too large: more than {MAX_DOCUMENT_CHARS // (1024 * 1024)} MiB of text "
                              "(orgloop reads at most that much of one file; split it)", Position(line, column))
    builder = _Builder(text)
    try:
        data = builder.document()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _position(mark) if mark is not None else Position(1, 1)
        problem = exc.problem or str(exc)
        start = _position(exc.context_mark) if exc.context_mark is not None else where
        if exc.context and start != where:
            problem += f" ({exc.context} at line {start.line}, column {start.column})"
        raise YamlSyntaxError(f"YAML syntax error: {problem}", where) from None
    except RecursionError:
        raise YamlSyntaxError("YAML syntax error: nested too deeply", Position(1, 1)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax error: {exc}", Position(1, 1)) from None
    finally:
        builder.loader.dispose()
    return YamlDocument(path, data, text, builder.duplicates)
