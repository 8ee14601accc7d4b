"""The event-stream YAML reader: safe_load semantics, duplicate keys, positions and syntax errors."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orgloop.config import yamlfile as _yf
from orgloop.config.yamlfile import Position, YamlSyntaxError, load_yaml

SAME_AS_SAFE_LOAD = [
    "a: 1\nb: [1, 2.5, true, null, ~, 0x1f, .inf, 'q', \"d\", !!str 5, !!int '7']\n",
    "base: &b {x: 1, y: 2}\nother: &o {z: 3}\nc:\n  <<: [*b, *o]\n  y: 9\nlist: &l [1, 2]\nagain: *l\n",
    "- a\n- - nested\n  - {k: v}\n- |\n  literal\n  text\n- >\n  folded\n  text\n",
    "",
    "# only a comment\n",
    "plain scalar\n",
]


@pytest.mark.parametrize("text", SAME_AS_SAFE_LOAD)
def test_values_match_safe_load_where_yaml_1_1_and_1_2_agree(text):
    assert load_yaml(Path("f.yaml"), text).data == yaml.safe_load(text)


@pytest.mark.parametrize("text, value", [
    ("yes", "yes"), ("on", "on"), ("No", "No"), ("OFF", "OFF"), ("y", "y"),         # 1.1 booleans: strings
    ("true", True), ("False", False), ("TRUE", True),
    ("~", None), ("null", None), ("NULL", None), ("", None),
    ("12:30", "12:30"), ("1_000", "1_000"), ("0777", 777), ("0o17", 15), ("0x1F", 31), ("0x", "0x"),
    ("0x-1", "0x-1"), ("+12", 12), ("-3", -3),
    ("1.5", 1.5), ("-.5", -0.5), ("1e3", 1000.0), ("6.02E+23", 6.02e23), ("1.", 1.0), ("-.inf", float("-inf")),
    ("2024-01-02", "2024-01-02"), ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"), (".5s", ".5s"),
    ("+", "+"), ("10MB", "10MB"), ("!!int '7'", 7), ("!!float 1", 1.0), ("'yes'", "yes"),
])
def test_plain_scalars_follow_the_yaml_1_2_core_schema_like_orgloop(text, value):
    assert load_yaml(Path("f.yaml"), f"v: {text}\n").data == {"v": value}


def test_nan_is_a_float():
    nan = load_yaml(Path("f.yaml"), "v: .nan\n").data["v"]
    assert isinstance(nan, float) and nan != nan


def test_duplicate_keys_are_recorded_with_the_position_of_the_repeated_key():
    doc = load_yaml(Path("f.yaml"), "a: 1\nb:\n  x: 1\n  x: 2\na: 3\n")
    assert doc.data == {"a": 3, "b": {"x": 2}}
    assert doc.duplicates == [("x", Position(4, 3)), ("a", Position(5, 1))]


def test_merge_keys_are_not_duplicates_and_explicit_keys_win():
    doc = load_yaml(Path("f.yaml"), "d: &d {x: 1}\nm:\n  x: 2\n  <<: *d\n")
    assert doc.data["m"] == {"x": 2} and doc.duplicates == []


def test_positions_are_computed_on_demand_and_point_at_values_or_keys():
    doc = load_yaml(Path("f.yaml"), "routes:\n  - name: r\n    when:\n      source: s\n")
    assert "node" not in vars(doc)                 # no node tree until a position is asked for
    assert doc.position(("routes", 0, "when", "source")) == Position(4, 15)
    assert doc.position(("routes", 0, "when"), key=True) == Position(3, 5)
    assert doc.position(("routes", 0, "when", "missing")) == Position(4, 7)   # deepest existing ancestor
    assert doc.position(("routes", 5)) == Position(2, 3)


@pytest.mark.parametrize("text, position, words", [
    ("a: [1, 2\n", Position(2, 1), "flow sequence at line 1, column 4"),
    ("a: 1\n b: 2\n", Position(2, 3), "mapping values are not allowed"),
    ("a: 1\n---\nb: 2\n", Position(2, 1), "several YAML documents"),
    ("a: *nowhere\n", Position(1, 4), "undefined alias 'nowhere'"),
    ("a: &x [*x]\n", Position(1, 8), "undefined alias 'x'"),
    ("a: !custom 1\n", Position(1, 4), "!custom"),
    ("? [1, 2]\n: v\n", Position(1, 3), "unhashable key"),
    ("a:\n  <<: 5\n", Position(2, 3), "merge key takes a mapping"),
])
def test_syntax_errors_carry_a_position(text, position, words):
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml(Path("f.yaml"), text)
    assert info.value.position == position
    assert words in str(info.value) and str(info.value).startswith("YAML syntax error: ")


def test_the_context_of_a_syntax_error_is_named_only_when_it_is_elsewhere():
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml(Path("f.yaml"), "a:\n\t- x\n")
    assert str(info.value) == "YAML syntax error: found character that cannot start any token"
    assert info.value.position == Position(2, 1)


# ---------------------------------------------------------------- limits

def _error(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as info:
        load_yaml(Path("f.yaml"), text)
    return info.value


def test_an_alias_bomb_is_refused_at_the_alias_that_crosses_the_limit():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    err = _error("\n".join(lines))
    assert "alias bombs" in str(err) and err.position.line == 5          # e: over 10^5 nodes, the first too many


def test_aliases_and_merges_within_the_budget_work():
    doc = load_yaml(Path("f.yaml"), "base: &b {x: 1, y: [1, 2]}\n" + "".join(
        f"k{i}:\n  <<: *b\n  z: {i}\n" for i in range(500)))
    assert doc.data["k499"] == {"x": 1, "y": [1, 2], "z": 499}


def test_nesting_deeper_than_the_limit_is_refused_where_it_starts():
    depth = _yf.MAX_DEPTH + 1
    err = _error("a: " + "[" * depth + "]" * depth)
    assert f"nested more than {_yf.MAX_DEPTH} levels deep" in str(err)
    assert (err.position.line, err.position.column) == (1, 4 + _yf.MAX_DEPTH - 1)    # the 64th '[' of the value
    ok = _yf.MAX_DEPTH - 1                                                         # the root mapping is a level
    assert load_yaml(Path("f.yaml"), "a: " + "[" * ok + "]" * ok).data["a"] is not None


def test_a_file_larger_than_the_limit_is_refused_where_the_limit_falls(tmp_path, monkeypatch):
    monkeypatch.setattr(_yf, "MAX_DOCUMENT_CHARS", 100)
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" * 30)                     # 150 characters
    err = _error(path.read_text())
    assert "file too large" in str(err) and (err.position.line, err.position.column) == (21, 1)
    with pytest.raises(YamlSyntaxError):
        load_yaml(path)                                 # read from disk: at most the limit's bytes are read
