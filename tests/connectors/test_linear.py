"""The ``linear`` poller against a fake Linear GraphQL API on 127.0.0.1 (a hand-moved clock, no sleeps)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from fakes.linear import FakeLinear
from orgloop.connectors.linear import LinearSource
from orgloop.event import validate_event
from support.polling import drain, opened, serving

KEY = "lin_api_s3cr3tk3yvalue"

@pytest.fixture
def lin(clock):
    with serving(FakeLinear(clock, api_key=KEY)) as fake:
        yield fake


def make(lin, clock, **config):
    return opened(LinearSource("linear", {"team": "ENG", "api_key": KEY, "api_url": lin.url, **config},
                               base_dir=Path("."), clock=clock))


def kinds(events):
    return [e["provenance"]["platform_event"] for e in events]


def test_issues_state_changes_and_comments(lin, clock):
    src = make(lin, clock)
    events, cp = src.poll(None, 10)
    assert events == []
    clock.advance(5)
    issue = lin.create_issue("ENG", "Implement auth flow", "Bob Jones")
    lin.create_issue("OPS", "Other team", "Eve")                  # another team: not reported
    clock.advance(5)
    events, cp = drain(src, cp)
    assert kinds(events) == ["issue.created"]
    e = validate_event(events[0], fill=False)
    assert e["provenance"]["issue_id"] == "ENG-1" and e["provenance"]["author"] == "Bob Jones"
    assert e["payload"]["issue_title"] == "Implement auth flow"
    clock.advance(5)
    lin.update_issue(issue["id"], state="In Progress", assignee="Alice Smith")
    clock.advance(1)
    lin.add_comment(issue["id"], "Bob Jones", "Looks good, let's move forward.")
    clock.advance(1)
    events, cp = drain(src, cp)
    assert sorted(kinds(events)) == ["comment.created", "issue.assignee_changed", "issue.state_changed"]
    by = {k: e for k, e in zip(kinds(events), events)}
    assert by["issue.state_changed"]["payload"]["previous_state"] == "Todo"
    assert by["issue.state_changed"]["payload"]["new_state"] == "In Progress"
    assert by["comment.created"]["payload"]["comment_body"] == "Looks good, let's move forward."
    assert by["comment.created"]["provenance"]["author"] == "Bob Jones"
    assert drain(src, cp)[0] == []                                 # nothing repeats
    # Changed while orgloop was down: reported after a restart, from the checkpoint's last-seen state.
    src.close()
    clock.advance(60)
    lin.update_issue(issue["id"], state="Done")
    restarted = make(lin, clock)
    events, _ = drain(restarted, cp)
    assert kinds(events) == ["issue.state_changed"] and events[0]["payload"]["new_state"] == "Done"


def test_first_start_reports_nothing_before_it_and_ids_are_natural(lin, clock):
    issue = lin.create_issue("ENG", "old", "Bob")
    clock.advance(5)
    src = make(lin, clock)
    _, cp = src.poll(None, 10)
    assert drain(src, cp)[0] == []
    clock.advance(2)
    lin.update_issue(issue["id"], priority=1)                      # first seen now: recorded, not reported
    assert drain(src, cp)[0] == []
    clock.advance(2)
    lin.add_comment(issue["id"], "Ann", "hi")
    a, _ = drain(make(lin, clock), cp)
    b, _ = drain(make(lin, clock), cp)
    assert kinds(a) == ["comment.created"] and [e["id"] for e in a] == [e["id"] for e in b]


def test_project_scope_and_pages(lin, clock):
    src = make(lin, clock, project="Backend", page_size=7)
    _, cp = src.poll(None, 10)
    clock.advance(1)
    for i in range(20):
        lin.create_issue("ENG", f"b{i}", "Bob", project="Backend")
        lin.create_issue("ENG", f"f{i}", "Bob", project="Frontend")
    n = src.requests
    first, cp1 = src.poll(cp, 6)
    assert src.requests - n == 3 + 1                               # 3 pages of issues, 1 of comments
    assert len(first) == 6 and cp1 == cp                           # the checkpoint moves with the last batch
    events, _ = drain(src, cp1, max_events=6)
    assert sorted(e["payload"]["issue_title"] for e in first + events) == sorted(f"b{i}" for i in range(20))


def test_same_millisecond_neither_lost_nor_repeated(lin, clock):
    issue = lin.create_issue("ENG", "x", "Bob")
    src = make(lin, clock)
    _, cp = src.poll(None, 10)
    clock.advance(1)
    lin.add_comment(issue["id"], "Ann", "one")
    events, cp = drain(src, cp)
    lin.add_comment(issue["id"], "Ann", "two")                     # same millisecond as "one"
    events2, cp = drain(src, cp)
    assert [e["payload"]["comment_body"] for e in events + events2] == ["one", "two"]


def _pending(lin, clock, src):
    issue = lin.create_issue("ENG", "x", "Bob")
    _, cp = src.poll(None, 10)
    clock.advance(1)
    lin.add_comment(issue["id"], "Ann", "waiting")
    return cp


def test_rate_limit_pauses_until_reset(lin, clock):
    src = make(lin, clock)
    cp = _pending(lin, clock, src)
    lin.rate_limit_next(reset_in=300)
    events, cp2 = src.poll(cp, 10)
    assert events == [] and json.loads(cp2).get("comments") == json.loads(cp).get("comments")
    assert src.poll_delay(30) == pytest.approx(301, abs=2)
    n = len(lin.requests)
    clock.advance(200)
    assert src.poll(cp2, 10)[0] == [] and len(lin.requests) == n
    clock.advance(110)
    assert [e["payload"]["comment_body"] for e in drain(src, cp2)[0]] == ["waiting"]


@pytest.mark.parametrize("fault", ["5xx", "garbage", "401", "graphql"])
def test_failures_back_off_and_keep_the_cursor(lin, clock, fault, caplog):
    caplog.set_level(logging.DEBUG)
    src = make(lin, clock)
    cp = _pending(lin, clock, src)
    for _ in range(4):
        if fault == "5xx":
            lin.fail_next(1, 503)
        elif fault == "garbage":
            lin.garbage_next(1)
        elif fault == "graphql":
            lin.graphql_error_next()
    if fault == "401":
        lin.api_key = "rotated"
    pauses = []
    for _ in range(4):
        n = len(lin.requests)
        events, cp2 = src.poll(cp, 10)
        assert events == [] and len(lin.requests) == n + 1
        assert json.loads(cp2) == json.loads(cp)
        pauses.append(src.poll_delay(1))
        assert src.poll(cp, 10) == ([], cp) and len(lin.requests) == n + 1
        clock.advance(pauses[-1])
    assert pauses == [5, 10, 20, 40]
    lin.api_key = KEY
    assert [e["payload"]["comment_body"] for e in drain(src, cp)[0]] == ["waiting"]
    assert KEY not in caplog.text and "poll failed" in caplog.text


def test_a_failure_mid_poll_reports_nothing_twice(lin, clock):
    """Issues are read before comments; when comments fail, the issue events come once, with the comments."""
    src = make(lin, clock)
    cp = _pending(lin, clock, src)
    lin.create_issue("ENG", "new", "Bob")
    real = lin.handle

    def flaky(req):
        if "comments(" in req.json().get("query", ""):
            from fakes.base import Answer
            return Answer.json(502, {"error": "bad gateway"})
        return real(req)

    lin.handle = flaky
    seen, cp = src.poll(cp, 10)
    lin.handle = real
    clock.advance(src.poll_delay(1))
    seen += drain(src, cp)[0]
    assert sorted(kinds(seen)) == ["comment.created", "issue.created"]


def test_config_is_checked():
    with pytest.raises(ValidationError):
        LinearSource("l", {"api_key": KEY}, base_dir=Path("."))
    with pytest.raises(ValidationError, match="extra"):
        LinearSource("l", {"team": "ENG", "apikey": KEY}, base_dir=Path("."))
