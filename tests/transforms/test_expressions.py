"""Expression filters (``where``), ``enrich`` and ``sample``: YAML in, closures out, nothing evaluated."""
from __future__ import annotations

import pytest

from orgloop import plugins
from orgloop.transforms import TransformContext, TransformError
from orgloop.transforms.enrich import EnrichTransform
from orgloop.transforms.expr import compile_condition, compile_value
from orgloop.transforms.filter import FilterTransform
from orgloop.transforms.sample import SampleTransform

CTX = TransformContext("r", "gh", "agent")


def ev(**payload):
    return {"id": "evt_0000000000000001", "source": "gh", "type": "resource.changed",
            "timestamp": "2026-01-01T00:00:00Z", "provenance": {"platform": "github", "author": "ann",
                                                               "author_type": "team_member"},
            "payload": payload, "trace_id": "trc_0000000000000001"}


@pytest.mark.parametrize("cond, payload, expected", [
    ({"path": "payload.n", "gt": 5}, {"n": 6}, True),
    ({"path": "payload.n", "gt": 5}, {"n": 5}, False),
    ({"path": "payload.n", "ge": 5, "lt": 10}, {"n": 9.5}, True),
    ({"path": "payload.n", "gt": 5}, {"n": "6"}, False),                 # a string is not a number
    ({"path": "payload.n", "gt": 0}, {"n": True}, False),                # nor is a boolean
    ({"path": "payload.n", "gt": 5}, {}, False),                         # missing
    ({"path": "payload.at", "lt": "2026-02"}, {"at": "2026-01-31T10:00"}, True),
    ({"path": "payload.n", "eq": 1}, {"n": True}, False),                # strict: true is not 1
    ({"path": "payload.n", "eq": None}, {}, True),                       # missing equals null
    ({"path": "payload.s", "in": ["a", "b"]}, {"s": "b"}, True),
    ({"path": "payload.s", "not_in": ["a", "b"]}, {"s": "c"}, True),
    ({"path": "payload.s", "contains": "lgtm"}, {"s": "looks lgtm to me"}, True),
    ({"path": "payload.tags", "contains": "bug"}, {"tags": ["ui", "bug"]}, True),
    ({"path": "payload.s", "matches": "^fix(\\(.*\\))?:"}, {"s": "fix(ui): x"}, True),
    ({"path": "payload.s", "exists": True}, {"s": None}, False),
    ({"path": "payload.s", "exists": False}, {}, True),
    ({"path": "payload.n", "lt": {"path": "payload.limit"}}, {"n": 3, "limit": 4}, True),
    ({"all": [{"path": "payload.n", "gt": 1}, {"path": "payload.s", "eq": "x"}]}, {"n": 2, "s": "x"}, True),
    ({"all": [{"path": "payload.n", "gt": 1}, {"path": "payload.s", "eq": "x"}]}, {"n": 2, "s": "y"}, False),
    ({"any": [{"path": "payload.n", "gt": 1}, {"path": "payload.s", "eq": "x"}]}, {"n": 0, "s": "x"}, True),
    ({"not": {"path": "provenance.author_type", "eq": "bot"}}, {}, True),
])
def test_conditions(cond, payload, expected):
    assert compile_condition(cond)(ev(**payload)) is expected


@pytest.mark.parametrize("cond, message", [
    ({"path": "payload.n", "gtt": 5}, "where: unknown operator 'gtt' (did you mean 'gt'?)"),
    ({"al": []}, "where: unknown key 'al' (did you mean 'all'?)"),
    ({"all": []}, "where.all: expected a non-empty list of conditions"),
    ({"any": [{"path": "a", "in": "x"}]}, "where.any[0].in: expected a list"),
    ({"path": "a", "matches": "("}, "where.matches: invalid regular expression"),
    ({"path": "a..b", "eq": 1}, "where.path: a path must be a dot-path"),
    ({"path": "a"}, "a comparison needs an operator"),
    ("__import__('os')", "a condition is a mapping"),
])
def test_bad_conditions_name_the_part(cond, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace("?", r"\?")):
        compile_condition(cond)


def test_value_expressions():
    e = ev(a=2, b=3, title="Fix It", labels=["x", "y"], none=None)
    assert compile_value({"add": [{"path": "payload.a"}, {"path": "payload.b"}, 1]})(e) == 6
    assert compile_value({"div": [{"path": "payload.a"}, 0]})(e) is None             # no exception
    assert compile_value({"mul": [{"path": "payload.title"}, 2]})(e) is None          # not numbers
    assert compile_value({"concat": ["#", {"path": "payload.a"}, " by ", {"path": "provenance.author"}]})(e) \
        == "#2 by ann"
    assert compile_value({"lower": {"path": "payload.title"}})(e) == "fix it"
    assert compile_value({"length": {"path": "payload.labels"}})(e) == 2
    assert compile_value({"coalesce": [{"path": "payload.none"}, {"path": "payload.gone"}, "dflt"]})(e) == "dflt"
    assert compile_value({"if": {"path": "payload.a", "gt": 1}, "then": "big", "else": "small"})(e) == "big"
    assert compile_value("{{payload.a}}")(e) == "{{payload.a}}"       # a literal stays literal
    with pytest.raises(ValueError, match="unknown operator 'eval'"):
        compile_value({"eval": "1+1"})


def test_filter_where_joins_the_other_conditions_and_is_checked_by_its_model():
    f = FilterTransform("f", {"match": {"type": "resource.changed"},
                              "where": {"any": [{"path": "payload.n", "ge": 10},
                                                {"path": "payload.labels", "contains": "urgent"}]}})
    assert f.apply(ev(n=10), CTX) and f.apply(ev(n=1, labels=["urgent"]), CTX)
    assert f.apply(ev(n=1, labels=[]), CTX) == []
    with pytest.raises(plugins.PluginConfigError, match="where: where: unknown operator 'gtt'"):
        plugins.create("transforms", "filter", "f", {"where": {"path": "payload.n", "gtt": 1}}, base_dir=None,
                       state_dir=None)


def test_enrich_sets_copies_and_computes_without_touching_the_input():
    t = EnrichTransform("e", {
        "set": {"payload.seen_by": "orgloop", "payload.summary": "{{provenance.author}}: {{payload.title}}"},
        "copy": {"payload.who": "provenance.author", "payload.missing": "payload.nope"},
        "compute": {"payload.score": {"mul": [{"path": "payload.n"}, 10]},
                    "payload.meta.size": {"if": {"path": "payload.n", "gt": 2}, "then": "big", "else": "small"}}})
    original = ev(n=3, title="Fix", meta={"keep": 1})
    before = repr(original)
    [out] = t.apply(original, CTX)
    assert repr(original) == before                                   # the input is never modified
    assert out["payload"] == {"n": 3, "title": "Fix", "meta": {"keep": 1, "size": "big"}, "seen_by": "orgloop",
                              "summary": "ann: Fix", "who": "ann", "score": 30}
    with pytest.raises(TransformError, match="payload.title is not a mapping"):
        EnrichTransform("e", {"set": {"payload.title.x": 1}}).apply(ev(title="t"), CTX)
    with pytest.raises(TransformError, match="not a valid event"):
        EnrichTransform("e", {"set": {"type": "nonsense"}}).apply(ev(), CTX)
    with pytest.raises(plugins.PluginConfigError, match="at least one of set, copy, compute"):
        plugins.create("transforms", "enrich", "e", {}, base_dir=None, state_dir=None)
    with pytest.raises(plugins.PluginConfigError, match="compute.payload.x: unknown operator 'sum'"):
        plugins.create("transforms", "enrich", "e", {"compute": {"payload.x": {"sum": [1]}}}, base_dir=None,
                       state_dir=None)


def test_sample_fraction_is_deterministic_and_close_to_the_share():
    t = SampleTransform("s", {"fraction": 0.25})
    events = [{**ev(), "id": f"evt_{i:016x}"} for i in range(4000)]
    kept = [e["id"] for e in events if t.apply(e, CTX)]
    assert 800 < len(kept) < 1200                                        # 1000 expected
    again = SampleTransform("s2", {"fraction": 0.25})
    assert [e["id"] for e in events if again.apply(e, CTX)] == kept     # same events, same answer
    by_author = SampleTransform("s", {"fraction": 0.5, "key": ["provenance.author"]})
    assert len({bool(by_author.apply({**e, "payload": {}}, CTX)) for e in events}) == 1   # one author: all or none


def test_rate_sampling_keeps_at_most_the_rate_per_bucket():
    now = [0.0]
    t = SampleTransform("s", {"rate": "3/min", "per": ["payload.repo"]}, clock=lambda: now[0])
    a = [bool(t.apply(ev(repo="a"), CTX)) for _ in range(5)]
    b = [bool(t.apply(ev(repo="b"), CTX)) for _ in range(2)]
    assert a == [True, True, True, False, False] and b == [True, True]   # burst = the count in the rate
    now[0] = 20.0                                                        # one token per 20 s
    assert [bool(t.apply(ev(repo="a"), CTX)) for _ in range(2)] == [True, False]
    other_route = TransformContext("r2", "gh", "agent")
    assert t.apply(ev(repo="a"), other_route)                            # buckets are per route
    assert t.dropped == 3
    with pytest.raises(plugins.PluginConfigError, match="sample needs fraction, rate or both"):
        plugins.create("transforms", "sample", "s", {"per": ["source"]}, base_dir=None, state_dir=None)
    with pytest.raises(plugins.PluginConfigError, match="invalid rate"):
        plugins.create("transforms", "sample", "s", {"rate": "3 per minute"}, base_dir=None, state_dir=None)
