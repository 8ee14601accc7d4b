"""Conditions and computed values for the ``filter`` (``where``) and ``enrich`` (``compute``) transforms.

Both are plain YAML, compiled once into closures; nothing is ever evaluated as code.

**Conditions** (a mapping):

* ``{all: [C, ...]}`` — every condition holds; ``{any: [C, ...]}`` — at least one; ``{not: C}``.
* ``{path: payload.count, gt: 5, le: 10}`` — the value at ``path`` passes every operator given:

  ==============  ==================================================================================
  ``eq``, ``ne``  equal / not equal (strict: ``true`` never equals ``1``; a missing value is ``null``)
  ``lt`` ``le``   less than, at most, greater than, at least: numbers with numbers, strings with
  ``gt`` ``ge``   strings (ISO timestamps compare correctly); any other pair is false
  ``in``          the value is one of a list; ``not_in``: it is none of them
  ``contains``    a string contains a substring, or a list contains an item
  ``matches``     a string matches a regular expression (Python syntax, searched)
  ``exists``      ``true``: the path is present and not null; ``false``: it is absent or null
  ==============  ==================================================================================

  An operand is a literal or a value expression (``{path: payload.limit}``).

**Values** (for ``compute``, and as operands): a literal (string, number, boolean, null, list), or one of
``{path: a.b}`` (missing: null), ``{concat: [V, ...]}`` (text; null is empty), ``{lower: V}``,
``{upper: V}``, ``{length: V}`` (of a string, list or mapping), ``{add|sub|mul|div|min|max: [V, ...]}``
(numbers; anything else, or dividing by zero, gives null), ``{coalesce: [V, ...]}`` (the first that is not
null), ``{if: C, then: V, else: V}``.
"""
from __future__ import annotations

import operator
import re
from functools import reduce
from typing import Any, Callable

from orgloop.config.diagnostics import did_you_mean
from orgloop.event import MISSING, get_path

__all__ = ["compile_condition", "compile_value", "get_path", "MISSING", "COMPARISONS", "VALUE_OPS"]

Event = dict[str, Any]
Condition = Callable[[Event], bool]
Value = Callable[[Event], Any]

COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "matches", "exists")
VALUE_OPS = ("path", "concat", "lower", "upper", "length", "add", "sub", "mul", "div", "min", "max", "coalesce",
             "if")


def _split(path: Any, where: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not path or any(not p for p in path.split(".")):
        raise ValueError(f"{where}: a path must be a dot-path such as payload.pr.number, got {path!r}")
    return tuple(path.split("."))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(a: Any, b: Any) -> bool:
        if _number(a) and _number(b) or isinstance(a, str) and isinstance(b, str):
            return bool(op(a, b))
        return False
    return test


def _in(a: Any, b: Any) -> bool:
    return isinstance(b, list) and any(_same(a, x) for x in b)


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return isinstance(b, str) and b in a
    return isinstance(a, list) and any(_same(x, b) for x in a)


_BINARY: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _same, "ne": lambda a, b: not _same(a, b), "lt": _ordered(operator.lt), "le": _ordered(operator.le),
    "gt": _ordered(operator.gt), "ge": _ordered(operator.ge), "in": _in, "not_in": lambda a, b: not _in(a, b),
    "contains": _contains,
}


def compile_condition(spec: Any, where: str = "where") -> Condition:
    """Compile a condition mapping (see the module docstring); ``ValueError`` names the bad part."""
    if not isinstance(spec, dict) or not spec:
        raise ValueError(f"{where}: a condition is a mapping such as {{path: payload.n, gt: 5}}, "
                         f"{{all: [...]}}, {{any: [...]}} or {{not: ...}}")
    if "path" not in spec:
        if len(spec) != 1:
            raise ValueError(f"{where}: combine conditions with one of all, any, not (got {sorted(spec)})")
        (key, inner), = spec.items()
        if key in ("all", "any"):
            if not isinstance(inner, list) or not inner:
                raise ValueError(f"{where}.{key}: expected a non-empty list of conditions")
            parts = [compile_condition(c, f"{where}.{key}[{i}]") for i, c in enumerate(inner)]
            return (lambda e: all(p(e) for p in parts)) if key == "all" else (lambda e: any(p(e) for p in parts))
        if key == "not":
            negated = compile_condition(inner, f"{where}.not")
            return lambda e: not negated(e)
        raise ValueError(f"{where}: unknown key {key!r}" + did_you_mean(str(key), ("all", "any", "not", "path"))
                         + "; a comparison needs 'path'")
    parts_ = _split(spec["path"], f"{where}.path")
    tests: list[Condition] = []
    for op, operand in spec.items():
        if op == "path":
            continue
        if op not in COMPARISONS:
            raise ValueError(f"{where}: unknown operator {op!r}" + did_you_mean(str(op), COMPARISONS)
                             + f" (operators: {', '.join(COMPARISONS)})")
        tests.append(_comparison(parts_, op, operand, f"{where}.{op}"))
    if not tests:
        raise ValueError(f"{where}: a comparison needs an operator besides 'path' ({', '.join(COMPARISONS)})")
    return tests[0] if len(tests) == 1 else (lambda e: all(t(e) for t in tests))


def _comparison(parts: tuple[str, ...], op: str, operand: Any, where: str) -> Condition:
    def value(e: Event) -> Any:
        v = get_path(e, parts)
        return None if v is MISSING else v

    if op == "exists":
        if not isinstance(operand, bool):
            raise ValueError(f"{where}: expected true or false")
        return lambda e: (value(e) is not None) == operand
    if op == "matches":
        if not isinstance(operand, str):
            raise ValueError(f"{where}: expected a regular expression (a string)")
        try:
            rx = re.compile(operand)
        except re.error as exc:
            raise ValueError(f"{where}: invalid regular expression {operand!r}: {exc}") from None
        return lambda e: isinstance(v := value(e), str) and rx.search(v) is not None
    if op in ("in", "not_in") and not isinstance(operand, (list, dict)):
        raise ValueError(f"{where}: expected a list")
    right = compile_value(operand, where)
    test = _BINARY[op]
    return lambda e: test(value(e), right(e))


def _const(v: Any) -> Value:
    return lambda e: v


def _arith(name: str, fn: Callable[[Any, Any], Any], args: list[Value]) -> Value:
    def run(e: Event) -> Any:
        values = [a(e) for a in args]
        if not all(_number(v) for v in values):
            return None
        try:
            return reduce(fn, values)
        except ZeroDivisionError:
            return None
    return run


_ARITH: dict[str, Callable[[Any, Any], Any]] = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
                                                "div": operator.truediv, "min": min, "max": max}


def _text(v: Any) -> str:
    return "" if v is None else (("true" if v else "false") if isinstance(v, bool) else str(v))


def compile_value(spec: Any, where: str = "compute") -> Value:
    """Compile a value expression (see the module docstring); literals evaluate to themselves."""
    if isinstance(spec, list):
        items = [compile_value(v, f"{where}[{i}]") for i, v in enumerate(spec)]
        if all(not isinstance(v, (dict, list)) for v in spec):
            return _const(list(spec))
        return lambda e: [i(e) for i in items]
    if not isinstance(spec, dict):
        return _const(spec)
    if "if" in spec:
        extra = set(spec) - {"if", "then", "else"}
        if extra:
            raise ValueError(f"{where}: 'if' takes 'then' and 'else' only, not {sorted(extra)}")
        cond = compile_condition(spec["if"], f"{where}.if")
        yes, no = compile_value(spec.get("then"), f"{where}.then"), compile_value(spec.get("else"), f"{where}.else")
        return lambda e: yes(e) if cond(e) else no(e)
    if len(spec) != 1:
        raise ValueError(f"{where}: a value expression has exactly one operator ({', '.join(VALUE_OPS)}), "
                         f"got {sorted(spec)}")
    (op, arg), = spec.items()
    here = f"{where}.{op}"
    if op == "path":
        parts = _split(arg, here)
        return lambda e: None if (v := get_path(e, parts)) is MISSING else v
    if op in ("lower", "upper", "length"):
        inner = compile_value(arg, here)
        if op == "length":
            return lambda e: len(v) if isinstance(v := inner(e), (str, list, dict)) else None
        method = str.lower if op == "lower" else str.upper
        return lambda e: method(v) if isinstance(v := inner(e), str) else None
    if op in ("concat", "coalesce", *_ARITH):
        if not isinstance(arg, list) or not arg:
            raise ValueError(f"{here}: expected a non-empty list of values")
        args = [compile_value(a, f"{here}[{i}]") for i, a in enumerate(arg)]
        if op == "concat":
            return lambda e: "".join(_text(a(e)) for a in args)
        if op == "coalesce":
            return lambda e: next((v for a in args if (v := a(e)) is not None), None)
        return _arith(op, _ARITH[op], args)
    raise ValueError(f"{where}: unknown operator {op!r}" + did_you_mean(str(op), VALUE_OPS)
                     + f" (operators: {', '.join(VALUE_OPS)})")
