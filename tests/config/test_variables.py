"""``${VAR}`` substitution and ``.env`` parsing."""
from __future__ import annotations

import pytest

from orgloop.config.variables import DotenvError, read_dotenv, substitute


def collect(data, env):
    problems = []
    out = substitute(data, env, lambda path, exc: problems.append((path, str(exc))))
    return out, problems


def test_references_defaults_and_the_escape():
    data = {"a": "${A}", "b": ["x-${B:-fallback}-y", 3, True], "c": "$${A} stays", "d": "${E:-}", "e": "$5"}
    out, problems = collect(data, {"A": "1", "E": ""})
    assert problems == []
    assert out == {"a": "1", "b": ["x-fallback-y", 3, True], "c": "${A} stays", "d": "", "e": "$5"}
    assert data["a"] == "${A}"                     # the input is not modified


def test_an_empty_variable_takes_the_default_but_is_kept_without_one():
    assert collect(["${X:-d}", "${X}"], {"X": ""})[0] == ["d", ""]


def test_problems_name_the_variable_and_the_path_and_keep_the_value():
    out, problems = collect({"routes": [{"token": "${TOKEN}"}, {"bad": "${not valid}"}]}, {})
    assert out == {"routes": [{"token": "${TOKEN}"}, {"bad": "${not valid}"}]}
    assert problems == [
        (("routes", 0, "token"), "variable TOKEN is not set (use ${TOKEN:-default} for a fallback)"),
        (("routes", 1, "bad"), "malformed variable reference '${not valid}': expected ${NAME} or ${NAME:-default}"),
    ]


def test_a_substituted_value_is_never_parsed_again():
    assert collect({"a": "${V}"}, {"V": "{b: [1]} ${W}"})[0] == {"a": "{b: [1]} ${W}"}


def test_dotenv(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# c\n\nexport A=1\nB = 'two words'\nC=\"x # y\"\nD=v # comment\nE=\n")
    assert read_dotenv(path) == {"A": "1", "B": "two words", "C": "x # y", "D": "v", "E": ""}
    assert read_dotenv(tmp_path / "missing") == {}
    path.write_text("A=1\n2BAD=x\n")
    with pytest.raises(DotenvError) as info:
        read_dotenv(path)
    assert info.value.line == 2


def test_every_unset_variable_of_a_string_is_named_at_once():
    out, problems = collect({"url": "https://${HOST}:${PORT}/${HOST}/${PATH_:-x}"}, {})
    assert problems == [(("url",), "variables HOST, PORT are not set (use ${HOST:-default} for a fallback)")]


@pytest.mark.parametrize("text, env, expected", [
    ("${A:-${B:-c}}", {}, "c"),
    ("${A:-${B:-c}}", {"B": "b"}, "b"),
    ("${A:-${B:-c}}", {"A": "a"}, "a"),
    ("${A:-x${B}y}-z", {"B": "1"}, "x1y-z"),
    ("${A:-$${B}}", {}, "${B}"),           # the escape inside a default; its first "}" ends the default
    ("${A:-}", {}, ""),
])
def test_nested_defaults(text, env, expected):
    assert collect([text], env) == ([expected], [])


def test_a_nested_default_names_what_is_unset_and_is_lazy():
    assert collect(["${A:-${B}}"], {}) == (["${A:-${B}}"], [((0,), "variable B is not set (use ${B:-default} "
                                                                 "for a fallback)")])
    assert collect(["${A:-${B}}"], {"A": "set"})[0] == ["set"]         # B is never needed


@pytest.mark.parametrize("text", ["${A:-${B:-c}", "${A:-", "${A:x}", "${}"])
def test_malformed_references_are_errors(text):
    out, problems = collect([text], {})
    assert out == [text] and len(problems) == 1
    assert "malformed variable reference" in problems[0][1] or "unterminated default" in problems[0][1]
