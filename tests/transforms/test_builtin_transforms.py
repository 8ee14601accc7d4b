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
    with pytest.raises(ValueError, match="unknown config keys"):
        FilterTransform("f", {"matches": {}})
    with pytest.raises(ValueError, match="invalid regular expression"):
        FilterTransform("f", {"match": {"a": "/(/"}})


def test_dedup_drops_duplicates_across_seqs_but_passes_redelivery_and_persists(tmp_path):
    now = [1000.0]
    d = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    a = ev(k="x")
    assert d.apply(a, TransformContext("r", "gh", "agent", seq=1)) == [a]
    assert d.apply(a, TransformContext("r", "gh", "agent", seq=1)) == [a]      # same seq: a redelivery
    assert d.apply(ev(k="x"), TransformContext("r", "gh", "agent", seq=2)) == []  # same key, new seq
    d.close()
    d2 = DedupTransform("d", {"key": ["payload.k"], "window": "1m"}, state_dir=tmp_path, clock=lambda: now[0])
    assert d2.apply(ev(k="x"), TransformContext("r", "gh", "agent", seq=3)) == []  # survived the restart
    now[0] += 61
    assert d2.apply(ev(k="x"), TransformContext("r", "gh", "agent", seq=4))      # window passed
    d2.close()


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
