import os
import stat
import sys
import textwrap

import pytest

from orgloop.event import new_event
from orgloop.transforms import TransformContext, TransformError
from orgloop.transforms.dedup import DedupTransform
from orgloop.transforms.filter import FilterTransform
from orgloop.transforms.script import ScriptTransform

CTX = TransformContext(route="r", source="gh", target="agent", seq=1)


def ev(**payload):
    return new_event("gh", "resource.changed", payload, provenance={"platform": "github", "author": "bot-1"})


def test_filter_match_match_any_exclude_regex_null_and_lists():
    f = FilterTransform("f", {"match": {"payload.state": ["open", "draft"], "provenance.author": "/^bot-\\d+$/"},
                              "match_any": {"payload.n": 1, "payload.label": "urgent"},
                              "exclude": {"payload.skip": True, "payload.gone": None}})
    assert f.apply(ev(state="open", n=1, gone=1), CTX)
    assert not f.apply(ev(state="closed", n=1, gone=1), CTX)          # match fails
    assert not f.apply(ev(state="open", n=2, gone=1), CTX)            # match_any fails
    assert not f.apply(ev(state="open", n=1, gone=1, skip=True), CTX)  # exclude hits
    assert not f.apply(ev(state="open", n=1), CTX)                    # null matches missing -> excluded
    assert FilterTransform("g", {"match": {"payload.n": 1}}).apply(ev(n=True), CTX) == []   # true is not 1


def test_filter_rejects_bad_config():
    with pytest.raises(ValueError, match="matches"):
        FilterTransform("f", {"matches": {}})
    with pytest.raises(ValueError, match="invalid regular expression"):
        FilterTransform("f", {"match": {"a": "/(/"}})


def _ctx(seq, route="r"):
    """A context whose claims the test settles by hand, as the router would."""
    return TransformContext(route, "gh", "agent", seq=seq, claims=[])


def _settle(ctx, delivered):
    for claim in ctx.claims:
        claim(delivered, lambda: None)


def test_dedup_drops_copies_in_flight_and_delivered_and_persists_only_delivered_marks(tmp_path):
    now = [1000.0]
    d = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    a = ev(k="x")
    first = _ctx(1)
    assert d.apply(a, first) == [a]
    assert d.apply(a, _ctx(1)) == [a]                 # same seq: a redelivery of the copy in flight
    assert d.apply(ev(k="x"), _ctx(2)) == []          # same key, another seq, first copy still in flight
    assert d.apply(ev(k="y"), _ctx(3))                # claimed but never settled: not persisted
    _settle(first, True)
    assert d.apply(a, _ctx(1)) == []                  # delivered: even a redelivery of seq 1 is dropped
    d.close()
    d2 = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    assert d2.apply(ev(k="x"), _ctx(4)) == []          # the delivered mark survived the restart
    assert d2.apply(ev(k="y"), _ctx(5))                # the unsettled claim did not
    assert d2.apply(ev(k="x"), _ctx(6, route="other"))  # marks are per route
    now[0] += 61
    assert d2.apply(ev(k="x"), _ctx(7))                # window passed
    d2.close()


def test_dedup_releases_a_dead_lettered_copy_so_a_later_copy_is_delivered(tmp_path):
    d = DedupTransform("d", {}, state_dir=tmp_path)
    a = ev()
    c1 = _ctx(1)
    assert d.apply(a, c1) == [a]
    _settle(c1, False)                                 # gave up: dead-lettered
    c9 = _ctx(9)
    assert d.apply(a, c9) == [a]                       # a later copy (a new seq) passes
    _settle(c9, True)
    c10 = _ctx(10)
    assert d.apply(a, c10) == [] and c10.claims == []  # dropped copies claim nothing
    d.close()


def test_dedup_settles_each_split_copy_by_its_own_key(tmp_path):
    d = DedupTransform("d", {"key": ["payload.part"]}, state_dir=tmp_path)
    p1, p2 = ev(part=1), ev(part=2)                    # two parts of one event (one seq)
    c1, c2 = _ctx(5), _ctx(5)
    assert d.apply(p1, c1) == [p1] and d.apply(p2, c2) == [p2]
    _settle(c1, True)                                  # part 1 delivered, part 2 dead-lettered
    _settle(c2, False)
    assert d.apply(ev(part=1), _ctx(6)) == []          # part 1 is marked delivered
    assert d.apply(ev(part=2), _ctx(6)) != []          # part 2 was released, not marked with its sibling
    d.close()


def test_dedup_without_claims_marks_at_once(tmp_path):
    d = DedupTransform("d", {}, state_dir=None)
    a = ev()
    no_claims = TransformContext("r", "gh", "agent", seq=0)   # orgloop test: no outcome will be reported
    assert d.apply(a, no_claims) == [a] and d.apply(a, no_claims) == []
    d.close()


def _script(tmp_path, body):
    p = tmp_path / "t.py"
    p.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return ScriptTransform("s", {"script": "t.py", "timeout_ms": 2000}, base_dir=tmp_path)


def test_script_protocol(tmp_path):
    t = _script(tmp_path, """
        import json, os, sys
        e = json.load(sys.stdin)
        mode = e["payload"]["mode"]
        if mode == "rewrite":
            e["payload"]["route"] = os.environ["ORGLOOP_ROUTE"]; print(json.dumps(e))
        elif mode == "split":
            print(json.dumps([e, e]))
        elif mode == "drop1": sys.exit(1)
        elif mode == "drop78": sys.exit(78)
        elif mode == "empty": pass
        elif mode == "bad": print("not json")
        elif mode == "crash": sys.exit(3)
        elif mode == "slow":
            import time; time.sleep(30)
    """)
    assert t.apply(ev(mode="rewrite"), CTX)[0]["payload"]["route"] == "r"
    assert len(t.apply(ev(mode="split"), CTX)) == 2
    for mode in ("drop1", "drop78", "empty"):
        assert t.apply(ev(mode=mode), CTX) == []
    for mode, msg in (("bad", "not JSON"), ("crash", "exited with 3"), ("slow", "did not finish")):
        with pytest.raises(TransformError, match=msg):
            t.apply(ev(mode=mode), CTX)
    missing = ScriptTransform("m", {"script": "nope.sh"}, base_dir=tmp_path)
    with pytest.raises(TransformError, match="cannot run"):
        missing.apply(ev(), CTX)
