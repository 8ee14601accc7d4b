"""Read one YAML file into plain values, keeping its node tree so errors can point at a line and column.

Values are built once (PyYAML's libyaml parser when available); positions are looked up only when a
problem is reported, by walking the node tree along the problem's path. Duplicate keys in a mapping,
which YAML would silently collapse, are reported as problems.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

__all__ = ["Position", "YamlDocument", "YamlSyntaxError", "load_yaml"]

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


class _MarkingLoader(_Loader):  # type: ignore[misc, valid-type]
    """A safe loader that records duplicate mapping keys instead of dropping them silently."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, Position]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if key in seen:
                    self.duplicates.append((str(key), _position(key_node.start_mark)))
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_MarkingLoader.add_constructor("tag:yaml.org,2002:map", _MarkingLoader.construct_yaml_map)


@dataclass
class YamlDocument:
    """A parsed file: its values and the node tree to locate any path in it."""

    path: Path
    data: Any
    node: yaml.Node | None
    duplicates: list[tuple[str, Position]]

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
    """Parse ``path`` (or ``text`` as if read from it). Raises :class:`YamlSyntaxError` with a position."""
    if text is None:
        text = path.read_text(encoding="utf-8")
    loader = _MarkingLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _position(mark) if mark is not None else Position(1, 1)
        problem = exc.problem or str(exc)
        if exc.context and "expected a single document" in exc.context:
            problem = "the file holds several YAML documents; orgloop files hold exactly one"
        raise YamlSyntaxError(f"YAML syntax error: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML syntax error: {exc}", Position(1, 1)) from None
    finally:
        loader.dispose()
    return YamlDocument(path, data, node, loader.duplicates)
