"""The ``github`` poller against a fake GitHub REST API on 127.0.0.1 (no sleeps: both share a hand-moved clock)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from fakes.github import FakeGitHub
from orgloop.connectors.github import GithubSource
from orgloop.event import validate_event
from support.polling import drain, opened, serving

REPO = "acme/widgets"
TOKEN = "ghp_s3cr3t-t0ken-value"


@pytest.fixture
def gh(clock):
    with serving(FakeGitHub(clock, token=TOKEN)) as fake:
        yield fake


def make(gh, clock, **config):
    cfg = {"repo": REPO, "token": TOKEN, "api_url": gh.url, **config}
    return opened(GithubSource("gh", cfg, base_dir=Path("."), clock=clock))


def kinds(events):
    return sorted(e["provenance"]["platform_event"] for e in events)


def test_reports_pull_request_activity_once(gh, clock):
    src = make(gh, clock)
    events, cp = src.poll(None, 100)
    assert events == [] and json.loads(cp)["initial"]         # first start: nothing from before it
    clock.advance(10)
    gh.open_pull(REPO, 7, "alice", "Add widgets")
    clock.advance(1)
    gh.add_review(REPO, 7, "bob", "APPROVED", "LGTM")
    clock.advance(1)
    gh.add_issue_comment(REPO, 7, "carol", "Nice one", association="NONE")
    gh.add_review_comment(REPO, 7, "bob", "nit: rename", "src/w.py")
    gh.check_run(REPO, 7, "ci/test", conclusion="success")
    clock.advance(1)
    events, cp = drain(src, cp)
    assert kinds(events) == ["check_run.completed", "issue_comment", "pull_request.opened",
                             "pull_request.review_submitted", "pull_request_review_comment"]
    for e in events:
        validate_event(e, fill=False)
        assert e["type"] == "resource.changed" and e["provenance"]["platform"] == "github"
        assert e["provenance"]["repo"] == REPO
    by = {e["provenance"]["platform_event"]: e for e in events}
    assert by["pull_request.review_submitted"]["payload"]["review_state"] == "approved"
    assert by["pull_request.review_submitted"]["provenance"]["author_type"] == "team_member"
    assert by["issue_comment"]["provenance"]["author_type"] == "external"
    assert by["check_run.completed"]["provenance"]["author_type"] == "bot"
    assert by["check_run.completed"]["payload"]["conclusion"] == "success"
    # Nothing new: nothing reported, and the lists answer 304 (free of rate limit).
    remaining = gh.remaining
    clock.advance(60)
    events, cp2 = drain(src, cp)
    assert events == [] and gh.served_304 >= 3
    assert gh.remaining >= remaining - 2      # reviews of no PR, check runs: 304 as well
    # A restart (new instance, same checkpoint) repeats nothing; new activity is reported once.
    src2 = make(gh, clock)
    assert drain(src2, cp2)[0] == []
    clock.advance(5)
    gh.close_pull(REPO, 7, merged_by="alice")
    events, _ = drain(src2, cp2)
    assert kinds(events) == ["pull_request.merged"]
    assert events[0]["payload"]["merged_by"] == "alice"


def test_check_suites_and_workflow_runs_of_open_pull_requests(gh, clock):
    src = make(gh, clock, events=["check_suite.completed", "workflow_run.completed", "check_run.completed"])
    _, cp = src.poll(None, 100)
    clock.advance(1)
    gh.open_pull(REPO, 9, "alice", "CI please")
    gh.workflow_run(REPO, 9, "tests")                              # in progress: nothing yet
    gh.check_run(REPO, 9, "lint")
    events, cp = drain(src, cp)
    assert events == []
    clock.advance(30)
    gh.workflow_run(REPO, 9, "tests", conclusion="failure")
    gh.check_suite(REPO, 9, conclusion="failure")
    gh.check_run(REPO, 9, "lint", conclusion="success")
    events, cp = drain(src, cp)
    assert kinds(events) == ["check_run.completed", "check_suite.completed", "workflow_run.completed"]
    by = {e["provenance"]["platform_event"]: e for e in events}
    assert by["workflow_run.completed"]["payload"]["conclusion"] == "failure"
    assert by["workflow_run.completed"]["payload"]["pr_numbers"] == [9]
    assert by["workflow_run.completed"]["provenance"]["author"] == "alice"
    assert by["check_suite.completed"]["provenance"]["author_type"] == "bot"
    clock.advance(30)
    assert drain(src, cp)[0] == []                                  # each completion once


def test_ids_are_natural(gh, clock):
    src_a, src_b = make(gh, clock), make(gh, clock)
    _, cp = src_a.poll(None, 100)
    clock.advance(3)
    gh.open_pull(REPO, 1, "alice", "x")
    ev_a, _ = drain(src_a, cp)
    ev_b, _ = drain(src_b, cp)                # the same activity read twice: the same ids
    assert [e["id"] for e in ev_a] == [e["id"] for e in ev_b] and len(ev_a) == 1


def test_pages_and_batches(gh, clock):
    gh.open_pull(REPO, 1, "alice", "x")
    src = make(gh, clock, events=["issue_comment"], per_page=40)
    _, cp = src.poll(None, 100)
    clock.advance(2)
    for i in range(130):
        gh.add_issue_comment(REPO, 1, "dave", f"comment {i}")
    clock.advance(1)
    first, cp1 = src.poll(cp, 50)
    assert len(first) == 50 and cp1 == cp     # the checkpoint moves with the last batch only
    second, cp2 = src.poll(cp1, 50)
    third, cp3 = src.poll(cp2, 50)
    assert len(second) == 50 and cp2 == cp and len(third) == 30 and cp3 != cp
    bodies = [e["payload"]["comment_body"] for e in first + second + third]
    assert bodies == [f"comment {i}" for i in range(130)]
    pages = [r for r in gh.requests if r.path.endswith("/issues/comments")]
    assert [r.query.get("page", "1") for r in pages] == ["1", "1", "2", "3", "4"]   # first start, then 4 pages


def test_same_second_items_are_neither_lost_nor_repeated(gh, clock):
    gh.open_pull(REPO, 1, "alice", "x")
    src = make(gh, clock, events=["issue_comment"])
    _, cp = src.poll(None, 100)
    clock.advance(1)
    gh.add_issue_comment(REPO, 1, "dave", "first")
    events, cp = drain(src, cp)
    assert [e["payload"]["comment_body"] for e in events] == ["first"]
    gh.add_issue_comment(REPO, 1, "erin", "second, same second")   # the clock has not moved
    events, cp = drain(src, cp)
    assert [e["payload"]["comment_body"] for e in events] == ["second, same second"]
    assert drain(src, cp)[0] == []


def test_authors_and_events_filters(gh, clock):
    src = make(gh, clock, authors=["Alice"], events=["pull_request.opened", "issue_comment"])
    _, cp = src.poll(None, 100)
    clock.advance(1)
    gh.open_pull(REPO, 1, "alice", "mine")
    gh.open_pull(REPO, 2, "mallory", "not listed")
    gh.add_issue_comment(REPO, 2, "alice", "hi")
    gh.add_issue_comment(REPO, 1, "mallory", "spam")
    gh.add_review(REPO, 1, "alice", "APPROVED", "ok")             # reviews not asked for
    events, _ = drain(src, cp)
    assert sorted((e["provenance"]["platform_event"], e["provenance"]["author"]) for e in events) == [
        ("issue_comment", "alice"), ("pull_request.opened", "alice")]
    assert not any(r.path.endswith("/reviews") or "check-runs" in r.path for r in gh.requests)


def test_config_is_checked():
    GithubSource("gh", {"repo": REPO, "events": ["pull_request.ready_for_review"]}, base_dir=Path(".")).close()
    with pytest.raises(ValidationError, match="unknown github events"):
        GithubSource("gh", {"repo": REPO, "events": ["pull_request.openned"]}, base_dir=Path("."))
    with pytest.raises(ValidationError, match="owner/name"):
        GithubSource("gh", {"repo": "just-a-name"}, base_dir=Path("."))
    with pytest.raises(ValidationError, match="extra"):
        GithubSource("gh", {"repo": REPO, "tokn": "x"}, base_dir=Path("."))


# ---------------------------------------------------------------------- bad answers
def _activity(gh, clock, src):
    _, cp = src.poll(None, 100)
    clock.advance(1)
    gh.open_pull(REPO, 3, "alice", "waiting")
    gh.add_issue_comment(REPO, 3, "bob", "ping")
    clock.advance(1)
    return cp


def test_primary_rate_limit_pauses_until_reset(gh, clock):
    src = make(gh, clock, events=["pull_request.opened", "issue_comment"])
    cp = _activity(gh, clock, src)
    gh.exhaust(reset_in=600)
    before = len(gh.requests)
    events, cp2 = src.poll(cp, 100)
    assert events == [] and len(gh.requests) == before + 1        # one request, answered 403
    assert json.loads(cp2)["repos"] == json.loads(cp)["repos"]    # the cursor did not move
    assert src.poll_delay(30) == pytest.approx(601, abs=2)        # waits for the reset, not the interval
    for _ in range(5):                                            # polls while paused send nothing
        clock.advance(100)
        assert src.poll(cp2, 100)[0] == []
    assert len(gh.requests) == before + 1
    clock.advance(120)                                            # past the reset
    events, _ = drain(src, cp2)
    assert kinds(events) == ["issue_comment", "pull_request.opened"]


def test_rate_limit_used_up_by_a_success_pauses_the_next_poll(gh, clock):
    src = make(gh, clock, events=["issue_comment"])
    cp = _activity(gh, clock, src)
    gh.remaining = 1
    events, cp = src.poll(cp, 100)
    assert len(events) == 1                                        # the answer that used it up is used
    before = len(gh.requests)
    clock.advance(10)
    assert src.poll(cp, 100)[0] == [] and len(gh.requests) == before


def test_secondary_rate_limit_honours_retry_after(gh, clock):
    src = make(gh, clock, events=["issue_comment"])
    cp = _activity(gh, clock, src)
    gh.secondary_next(120)
    assert src.poll(cp, 100)[0] == []
    before = len(gh.requests)
    assert src.poll_delay(5) == pytest.approx(120, abs=1)
    clock.advance(119)
    assert src.poll(cp, 100)[0] == [] and len(gh.requests) == before
    clock.advance(2)
    assert [e["payload"]["comment_body"] for e in drain(src, cp)[0]] == ["ping"]


@pytest.mark.parametrize("fault", ["5xx", "garbage", "401"])
def test_failures_back_off_and_keep_the_cursor(gh, clock, fault, caplog):
    caplog.set_level(logging.DEBUG)
    src = make(gh, clock, events=["pull_request.opened", "issue_comment"])
    cp = _activity(gh, clock, src)
    if fault == "5xx":
        gh.fail_next(6, 502)
    elif fault == "garbage":
        gh.garbage_next(6)
    else:
        gh.token = "rotated-token"
    pauses, sent = [], []
    for _ in range(6):                       # six failed polls, each after the pause ran out
        n = len(gh.requests)
        events, cp2 = src.poll(cp, 100)
        assert events == [] and json.loads(cp2).get("repos") == json.loads(cp).get("repos")
        sent.append(len(gh.requests) - n)
        pauses.append(src.poll_delay(1))
        assert src.poll(cp, 100) == ([], cp) and len(gh.requests) == n + sent[-1]   # paused: no request
        clock.advance(pauses[-1])
    assert sent == [1] * 6
    assert pauses == [5, 10, 20, 40, 80, 160]
    gh.token = TOKEN
    assert kinds(drain(src, cp)[0]) == ["issue_comment", "pull_request.opened"]
    assert src.gate.failures == 0
    assert TOKEN not in caplog.text and "rotated-token" not in caplog.text
    assert "poll failed" in caplog.text


def test_a_failure_mid_poll_loses_nothing(gh, clock):
    """Comments are read before check runs; if check runs fail, the comments must come again."""
    src = make(gh, clock, events=["issue_comment", "check_run.completed"])
    cp = _activity(gh, clock, src)
    gh.check_run(REPO, 3, "ci", conclusion="failure")
    # pulls (1 request), issue comments (1), then check-runs fails
    real = gh.handle

    def flaky(req):
        if "check-runs" in req.path:
            from fakes.base import Answer
            return Answer.json(500, {"message": "boom"})
        return real(req)

    gh.handle = flaky
    events, cp = src.poll(cp, 100)
    assert events == []
    gh.handle = real
    clock.advance(src.poll_delay(1))
    events, _ = drain(src, cp)
    assert kinds(events) == ["check_run.completed", "issue_comment"]
