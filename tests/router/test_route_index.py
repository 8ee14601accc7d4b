from __future__ import annotations

import doctest
import fnmatch
import threading
from collections.abc import Mapping

import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

import orgloop.router.index
from orgloop.router import RouteIndex


def brute_force(routes: Mapping[str, tuple[str, list[str] | None, object]], source: str, event_type: str) -> tuple:
    """The definition of matching, checked route by route (``routes`` keeps insertion order)."""
    out = []
    for src, events, value in routes.values():
        if not fnmatch.fnmatchcase(source, src):
            continue
        if events and not any(fnmatch.fnmatchcase(event_type, e) for e in events):
            continue
        out.append(value)
    return tuple(out)


def test_exact_wildcard_and_glob_routes_fan_out_in_insertion_order() -> None:
    index: RouteIndex[str] = RouteIndex()
    index.add("r1", "github", ["pr.opened", "pr.closed"], "v1")
    index.add("r2", "*", None, "v2")
    index.add("r3", "github-*", ["*"], "v3")
    index.add("r4", "github", [], "v4")
    index.add("r5", "*", ["pr.*"], "v5")
    index.add("r6", "cron", ["tick"], "v6")
    assert index.match("github", "pr.opened") == ("v1", "v2", "v4", "v5")
    assert index.match("github-enterprise", "push") == ("v2", "v3")
    assert index.match("cron", "tick") == ("v2", "v6")
    assert index.match("cron", "tock") == ("v2",)
    assert len(index) == 6 and "r3" in index and "nope" not in index


def test_no_match_is_an_empty_tuple() -> None:
    index: RouteIndex[int] = RouteIndex()
    index.add("r", "a", ["x"], 1)
    assert index.match("b", "x") == () and index.match("a", "y") == ()


def test_globs_are_case_sensitive_and_whole_string() -> None:
    index: RouteIndex[int] = RouteIndex()
    index.add("r", "git?ub", ["[ab].changed"], 1)
    assert index.match("github", "a.changed") == (1,)
    assert index.match("GitHub", "a.changed") == ()
    assert index.match("github-x", "a.changed") == ()
    assert index.match("github", "c.changed") == ()


def test_remove_and_readd_goes_to_the_end() -> None:
    index: RouteIndex[str] = RouteIndex()
    for name in "abc":
        index.add(name, "s", ["t"], name)
    assert index.match("s", "t") == ("a", "b", "c")
    assert index.remove("a") == "a"
    assert index.match("s", "t") == ("b", "c")
    index.add("a", "s", None, "a2")
    assert index.match("s", "t") == ("b", "c", "a2")


def test_the_cache_is_invalidated_by_add_and_remove() -> None:
    index: RouteIndex[str] = RouteIndex()
    assert index.match("s", "t") == ()
    index.add("glob", "s*", None, "g")
    assert index.match("s", "t") == ("g",)
    index.add("exact", "s", ["t"], "e")
    assert index.match_many([("s", "t"), ("sx", "t")]) == [("g", "e"), ("g",)]
    index.remove("glob")
    assert index.match_many([("s", "t"), ("sx", "t")]) == [("e",), ()]


def test_cache_bound_clears_without_changing_answers() -> None:
    index: RouteIndex[int] = RouteIndex(max_cached_pairs=3)
    index.add("r", "*", ["t1", "t3"], 1)
    for _ in range(3):
        assert [index.match(f"s{i}", f"t{i}") for i in range(6)] == [(), (1,), (), (1,), (), ()]


def test_literal_star_source_is_matched_once() -> None:
    index: RouteIndex[int] = RouteIndex()
    index.add("r", "*", ["*"], 1)
    assert index.match("*", "*") == (1,)


@pytest.mark.parametrize(("args", "error", "message"), [
    (("", "s", None), ValueError, "route name must be a non-empty string, not ''"),
    (("r", None, None), ValueError, "source must be a non-empty string, not None"),
    (("r", "s", "push"), TypeError, "events must be a list of event types"),
    (("r", "s", ["ok", ""]), ValueError, "event type must be a non-empty string, not ''"),
])
def test_bad_routes_are_refused(args: tuple, error: type, message: str) -> None:
    index: RouteIndex[int] = RouteIndex()
    with pytest.raises(error, match=message):
        index.add(args[0], args[1], args[2], 0)
    assert len(index) == 0


def test_duplicate_and_unknown_names() -> None:
    index: RouteIndex[int] = RouteIndex()
    index.add("r", "s", None, 1)
    with pytest.raises(ValueError, match="route 'r' is already in the index"):
        index.add("r", "t", None, 2)
    with pytest.raises(KeyError, match="no route named 'x'"):
        index.remove("x")
    assert index.match("s", "any") == (1,)


def test_concurrent_matching_while_routes_change() -> None:
    """Matching from other threads while routes change never fails and never loses an untouched route."""
    index: RouteIndex[int] = RouteIndex()
    index.add("base", "s", None, 0)
    stop = threading.Event()
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            got = index.match("s", "t")
            if not got or got[0] != 0:
                errors.append(repr(got))

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(1, 500):
        index.add(f"r{i}", "s" if i % 2 else "s*", ["t"], i)
        if i > 5:
            index.remove(f"r{i - 5}")
    stop.set()
    for t in threads:
        t.join(10)
    assert not errors and not any(t.is_alive() for t in threads)
    assert index.match("s", "t") == (0, 495, 496, 497, 498, 499)


def test_doc_examples() -> None:
    result = doctest.testmod(orgloop.router.index)
    assert result.attempted > 0 and result.failed == 0


# --- property tests against the brute-force definition ---------------------------------------------

SOURCES = ["github", "github-x", "gitlab", "cron", "*"]
TYPES = ["pr.opened", "pr.closed", "push", "tick", "*"]
source_specs = st.sampled_from(["github", "gitlab", "cron", "*", "git*", "github-?", "*lab", "[gc]*"])
event_specs = st.one_of(st.none(), st.lists(st.sampled_from(["pr.opened", "push", "tick", "*", "pr.*", "p*"]),
                                            max_size=3))
queries = st.tuples(st.sampled_from(SOURCES), st.sampled_from(TYPES))


class IndexMachine(RuleBasedStateMachine):
    names = Bundle("names")

    def __init__(self) -> None:
        super().__init__()
        self.index: RouteIndex[object] = RouteIndex(max_cached_pairs=7)
        self.model: dict[str, tuple[str, list[str] | None, object]] = {}
        self.counter = 0

    @rule(target=names, source=source_specs, events=event_specs)
    def add(self, source: str, events: list[str] | None) -> str:
        self.counter += 1
        name = f"route{self.counter}"
        self.index.add(name, source, events, name)
        self.model[name] = (source, events, name)
        return name

    @rule(name=consumes(names))
    def remove(self, name: str) -> None:
        assert self.index.remove(name) == name
        del self.model[name]

    @rule(query=queries)
    def match(self, query: tuple[str, str]) -> None:
        assert self.index.match(*query) == brute_force(self.model, *query)

    @rule(batch=st.lists(queries, max_size=10))
    def match_many(self, batch: list[tuple[str, str]]) -> None:
        assert self.index.match_many(batch) == [brute_force(self.model, *q) for q in batch]

    @invariant()
    def size(self) -> None:
        assert len(self.index) == len(self.model)


IndexMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestIndexStateMachine = IndexMachine.TestCase


@settings(max_examples=200, deadline=None)
@given(routes=st.lists(st.tuples(source_specs, event_specs), max_size=25), batch=st.lists(queries, max_size=20))
def test_matches_brute_force(routes: list, batch: list) -> None:
    index: RouteIndex[object] = RouteIndex()
    model = {}
    for i, (source, events) in enumerate(routes):
        index.add(f"r{i}", source, events, i)
        model[f"r{i}"] = (source, events, i)
    for query in batch:
        assert index.match(*query) == brute_force(model, *query)


def test_answers_are_cached_per_pair_and_changes_drop_only_what_they_can_affect() -> None:
    index: RouteIndex[str] = RouteIndex()
    index.add("a", "src-a", ["push", "tick"], "A")
    index.add("b", "src-b", ["push"], "B")
    index.add("any-type", "src-c", None, "C")
    asked = [("src-a", "push"), ("src-a", "tick"), ("src-a", "other"), ("src-b", "push"), ("src-c", "x")]
    assert [index.match(*q) for q in asked] == [("A",), ("A",), (), ("B",), ("C",)]
    assert index.cached_pairs == 5
    assert [index.match(*q) for q in asked] == [("A",), ("A",), (), ("B",), ("C",)]
    assert index.cached_pairs == 5                # asked again: answered from the cache
    index.add("a2", "src-a", ["push"], "A2")      # an exact source: only src-a's three answers are dropped
    assert index.cached_pairs == 2
    assert index.match("src-a", "push") == ("A", "A2") and index.match("src-b", "push") == ("B",)
    assert index.cached_pairs == 3
    index.add("all", "*", ["push"], "ALL")        # a wildcard source may change any answer
    assert index.cached_pairs == 0
    assert index.match("src-b", "push") == ("B", "ALL") and index.match("src-c", "whatever") == ("C",)
    index.remove("b")
    assert index.match("src-b", "push") == ("ALL",)


def test_the_cache_is_keyed_by_the_first_asking_events_own_string() -> None:
    """Later events that carry the same string object find their entry by identity (see the module doc)."""
    index: RouteIndex[str] = RouteIndex()
    index.add("a", "src-a", ["push"], "A")
    source = "".join(["src", "-a"])               # equal to the route's source, but another object
    assert source is not index._routes["a"].source
    index.match(source, "push")
    (key,) = index._cache
    assert key is source
