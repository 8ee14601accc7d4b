"""github-webhook, linear-webhook and the coding-agent hook source, over real HTTP; and ``orgloop hook``."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from orgloop.connectors.hooks import session_phase
from orgloop.connectors.ingress import sign
from orgloop.connectors.linear_webhook import linear_event
from orgloop.spec import SourceSpec
from support.fake_gateway import post
from support.pipeline import wait_until

SECRET = "gh-secret-for-tests"


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


PR = {"number": 7, "title": "Fix it", "user": {"login": "alice", "type": "User"}, "html_url": "https://gh/pr/7",
      "head": {"ref": "fix"}, "base": {"ref": "main"}, "draft": False, "merged": False,
      "author_association": "MEMBER"}
REPO = {"full_name": "acme/app"}


@pytest.mark.parametrize("kind, body, name, author_type", [
    ("pull_request", {"action": "opened", "pull_request": PR, "repository": REPO}, "pull_request.opened",
     "team_member"),
    ("pull_request", {"action": "closed", "pull_request": {**PR, "merged": True, "merged_by": {"login": "bob"}},
                      "repository": REPO}, "pull_request.merged", "team_member"),
    ("pull_request_review", {"action": "submitted", "pull_request": PR, "repository": REPO,
                             "review": {"id": 1, "state": "approved", "body": "ok",
                                        "user": {"login": "rev[bot]", "type": "Bot"}}},
     "pull_request.review_submitted", "bot"),
    ("issue_comment", {"action": "created", "issue": {"number": 3, "title": "t", "user": {"login": "a"}},
                       "comment": {"body": "hi", "user": {"login": "carol"}, "author_association": "NONE"},
                       "repository": REPO},
     "issue_comment", "external"),
    ("check_run", {"action": "completed", "check_run": {"name": "ci", "conclusion": "failure",
                                                        "app": {"slug": "actions"}}, "repository": REPO},
     "check_run.completed", "bot"),
    ("star", {"action": "created", "repository": REPO, "sender": {"login": "fan"}}, "star.created", "unknown"),
])
def test_github_deliveries_map_to_the_poller_names(run_pipeline, tmp_path, kind, body, name, author_type):
    rt = run_pipeline(SourceSpec("gh", "github-webhook", {"secret": SECRET}))
    raw = json.dumps(body).encode()
    headers = {"X-GitHub-Event": kind, "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": sign(SECRET, raw)}
    status, answer = post(rt.ingress_port, "/webhook/gh", raw, headers)
    assert status == 200 and answer["events_created"] == 1
    assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) == 1)
    event = _lines(tmp_path / "out.jsonl")[0]
    assert event["id"] == answer["event_ids"][0]
    assert event["provenance"]["platform"] == "github" and event["provenance"]["platform_event"] == name
    assert event["provenance"]["author_type"] == author_type and event["type"] == "resource.changed"


def test_github_redelivery_has_the_same_id_and_refusals(run_pipeline):
    rt = run_pipeline(SourceSpec("gh", "github-webhook", {"secret": SECRET, "events": ["pull_request.opened"]}))
    port = rt.ingress_port
    raw = json.dumps({"action": "opened", "pull_request": PR, "repository": REPO}).encode()
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "abc", "X-Hub-Signature-256": sign(SECRET, raw)}
    first, second = post(port, "/webhook/gh", raw, headers)[1], post(port, "/webhook/gh", raw, headers)[1]
    assert first["event_ids"] == second["event_ids"]                 # X-GitHub-Delivery is the natural key
    other = {**headers, "X-GitHub-Delivery": "def"}
    assert post(port, "/webhook/gh", raw, other)[1]["event_ids"] != first["event_ids"]
    status, answer = post(port, "/webhook/gh", raw, {k: v for k, v in headers.items() if k != "X-GitHub-Event"})
    assert status == 400 and "X-GitHub-Event" in answer["error"]
    status, _ = post(port, "/webhook/gh", raw, {"X-GitHub-Event": "pull_request", "X-Signature": sign(SECRET, raw)})
    assert status == 401                                             # GitHub signs with X-Hub-Signature-256 only
    closed = json.dumps({"action": "closed", "pull_request": PR, "repository": REPO}).encode()
    status, answer = post(port, "/webhook/gh", closed, {"X-GitHub-Event": "pull_request",
                                                         "X-Hub-Signature-256": sign(SECRET, closed)})
    assert status == 200 and answer["events_created"] == 0           # filtered by `events`, not refused
    form = ("payload=" + quote(raw.decode())).encode()
    status, answer = post(port, "/webhook/gh", form, {"Content-Type": "application/x-www-form-urlencoded",
                                                       "X-GitHub-Event": "pull_request",
                                                       "X-Hub-Signature-256": sign(SECRET, form)})
    assert status == 200 and answer["events_created"] == 1


def test_linear_webhook_is_verified_with_linear_signature(run_pipeline, tmp_path):
    rt = run_pipeline(SourceSpec("lin", "linear-webhook", {"secret": SECRET, "team": "ENG"}))
    body = {"action": "update", "type": "Issue", "url": "https://linear/ENG-1",
            "data": {"id": "i1", "identifier": "ENG-1", "title": "Bug", "updatedAt": "2026-01-01T00:00:00Z",
                     "state": {"name": "Done"}, "team": {"key": "ENG"}},
            "updatedFrom": {"stateId": "s0"}, "actor": {"name": "Dana", "type": "user"}}
    raw = json.dumps(body).encode()
    good = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert post(rt.ingress_port, "/webhook/lin", raw, {"Linear-Signature": "0" * 64})[0] == 401
    status, answer = post(rt.ingress_port, "/webhook/lin", raw, {"Linear-Signature": good,
                                                                  "Linear-Delivery": "ld-1"})
    assert status == 200 and answer["events_created"] == 1
    other_team = json.dumps({**body, "data": {**body["data"], "team": {"key": "OPS"}}}).encode()
    sig = hmac.new(SECRET.encode(), other_team, hashlib.sha256).hexdigest()
    assert post(rt.ingress_port, "/webhook/lin", other_team, {"Linear-Signature": sig})[1]["events_created"] == 0
    assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) == 1)
    event = _lines(tmp_path / "out.jsonl")[0]
    assert event["provenance"]["platform_event"] == "issue.state_changed"
    assert event["provenance"]["author"] == "Dana" and event["payload"]["identifier"] == "ENG-1"
    assert event["payload"]["state"] == "Done"


def test_linear_events_are_named_as_the_poller_names_them():
    assert linear_event({"type": "Comment", "action": "create", "data": {"body": "x"}})[0] == "comment.created"
    assert linear_event({"type": "Issue", "action": "create", "data": {}})[0] == "issue.created"
    update = {"type": "Issue", "action": "update", "data": {}}
    assert linear_event({**update, "updatedFrom": {"assigneeId": None}})[0] == "issue.assignee_changed"
    assert linear_event({**update, "updatedFrom": {"title": "old"}})[0] == "issue.updated"


def test_session_phases():
    assert session_phase({"hook_event_name": "SessionStart"}) == ("resource.changed", "session.started")
    assert session_phase({"hook_event_name": "Stop"}) == ("actor.stopped", "session.exited")
    assert session_phase({"session_id": "x"}) == ("actor.stopped", "session.exited")
    assert session_phase({"hook_event_name": "UserPromptSubmit"}) == ("resource.changed",
                                                                      "session.user_prompt_submit")


def _hook(args, stdin, port):
    env = {**os.environ, "ORGLOOP_PORT": str(port)}
    return subprocess.run([sys.executable, "-m", "orgloop", "hook", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_orgloop_hook_posts_stop_and_start_to_the_running_runtime(run_pipeline, tmp_path):
    rt = run_pipeline(SourceSpec("claude-code", "claude-code", {}))
    stop = {"session_id": "s-1", "cwd": "/work/x", "transcript_path": "/t.jsonl", "hook_event_name": "Stop"}
    r = _hook(["claude-code-stop"], json.dumps(stop), rt.ingress_port)
    assert r.returncode == 0, r.stderr
    r = _hook(["claude-code-start"], json.dumps({"session_id": "s-2", "cwd": "/w"}), rt.ingress_port)
    assert r.returncode == 0, r.stderr
    assert wait_until(lambda: len(_lines(tmp_path / "out.jsonl")) == 2)
    stopped, started = _lines(tmp_path / "out.jsonl")
    assert stopped["type"] == "actor.stopped" and stopped["provenance"]["platform"] == "claude-code"
    assert stopped["payload"]["working_directory"] == "/work/x" and stopped["payload"]["session_id"] == "s-1"
    assert started["type"] == "resource.changed" and started["provenance"]["platform_event"] == "session.started"
    # a refusal is exit 1 with the answer on stderr
    r = _hook(["claude-code-stop", "--source", "nobody"], json.dumps(stop), rt.ingress_port)
    assert r.returncode == 1 and "404" in r.stderr
    r = _hook(["claude-code-stop"], "not json", rt.ingress_port)
    assert r.returncode == 64 and "stdin is not JSON" in r.stderr


@pytest.mark.slow
def test_orgloop_hook_is_silent_when_no_runtime_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    r = _hook(["claude-code-stop"], json.dumps({"session_id": "x"}), free)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
