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
    return TransformContext(route, "gh", "agent", seq=seq)


def test_dedup_drops_copies_in_flight_and_delivered_and_persists_only_delivered_marks(tmp_path):
    now = [1000.0]
    d = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    a = ev(k="x")
    assert d.apply(a, _ctx(1)) == [a]
    assert d.apply(a, _ctx(1)) == [a]                 # same seq: a redelivery of the copy in flight
    assert d.apply(ev(k="x"), _ctx(2)) == []          # same key, another seq, first copy still in flight
    assert d.apply(ev(k="y"), _ctx(3))                # claimed but never settled: not persisted
    d.settle("r", 1, True)
    assert d.apply(a, _ctx(1)) == []                  # delivered: even a redelivery of seq 1 is dropped
    d.close()
    d2 = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    assert d2.apply(ev(k="x"), _ctx(4)) == []          # the delivered mark survived the restart
    assert d2.apply(ev(k="y"), _ctx(5))                # the unsettled claim did not
    assert d2.apply(ev(k="x"), _ctx(6, route="other"))  # marks are per route
    now[0] += 61
    assert d2.apply(ev(k="x"), _ctx(7))                # window passed
    d2.close()


def test_dedup_releases_a_dead_lettered_copy_so_a_replay_is_delivered(tmp_path):
    d = DedupTransform("d", {}, state_dir=tmp_path)
    a = ev()
    assert d.apply(a, _ctx(1)) == [a]
    d.settle("r", 1, False)                            # gave up: dead-lettered
    assert d.apply(a, _ctx(9)) == [a]                  # the replay (a new seq) passes
    d.settle("r", 9, True)
    assert d.apply(a, _ctx(10)) == []
    d.settle("r", 10, True)                            # settling a seq that claimed nothing is harmless
    d.close()


def test_dedup_without_a_seq_marks_at_once(tmp_path):
    d = DedupTransform("d", {}, state_dir=None)
    a = ev()
    assert d.apply(a, _ctx(0)) == [a] and d.apply(a, _ctx(0)) == []
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
