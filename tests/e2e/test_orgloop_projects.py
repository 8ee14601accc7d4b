"""End to end: OrgLoop-style projects (directory form and inline form) run by a real ``orgloop start``
against a fake GitHub API, a fake Linear API and a fake OpenClaw gateway, all on 127.0.0.1.

The test copies a project from ``tests/e2e/projects``, starts ``orgloop start`` as a subprocess, makes
activity on the fakes (a pull request review, a Linear state change) and runs ``orgloop hook
claude-code-stop`` as Claude Code's Stop hook would. It then checks what the gateway received: one wake-up
per route, with the route's session key and the launch prompt rendered from the event (front matter
stripped, placeholders filled), and no secret in anything orgloop printed. A restart must not deliver
anything again.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fakes.github import FakeGitHub
from fakes.linear import FakeLinear
from support.fake_gateway import FakeGateway
from support.pipeline import wait_until

PROJECTS = Path(__file__).with_name("projects")
GH_TOKEN = "ghp_e2eS3cretT0ken"
LINEAR_KEY = "lin_api_e2eS3cretKey"
GATEWAY_TOKEN = "oc_e2eS3cretGateway"
REPO = "acme/widgets"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orgloop:
    """``orgloop start`` in the foreground of a child process; its output collected by a thread."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "orgloop", "start", "--for", "90s"], cwd=project,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def running(self) -> bool:
        return any("orgloop is running" in line for line in self.output)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)     # our own child, by its pid
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        finally:
            self._reader.join(10)
            assert self.proc.stdout is not None
            self.proc.stdout.close()


def _agent_posts(gw: FakeGateway) -> list[dict]:
    return [r.json() for r in gw.received if r.path == "/hooks/agent"]


@pytest.mark.slow
@pytest.mark.parametrize("project, actor_agent", [("engineering", "engineering"), ("inline", "main")])
def test_an_orgloop_project_wakes_the_agent_with_rendered_prompts(project, actor_agent, tmp_path):
    gw = FakeGateway()
    with FakeGitHub(token=GH_TOKEN) as gh, FakeLinear(api_key=LINEAR_KEY) as lin:
        try:
            _run(project, actor_agent, tmp_path, gh, lin, gw)
        finally:
            gw.close()


def _run(project: str, actor_agent: str, tmp_path: Path, gh: FakeGitHub, lin: FakeLinear, gw: FakeGateway) -> None:
    root = tmp_path / project
    shutil.copytree(PROJECTS / project, root)
    port = _free_port()
    env = {**os.environ, "ORGLOOP_HOME": str(tmp_path / "home"), "ORGLOOP_PORT": str(port),
           "GITHUB_TOKEN": GH_TOKEN, "GITHUB_API_URL": gh.url, "LINEAR_API_KEY": LINEAR_KEY,
           "LINEAR_API_URL": lin.url, "OPENCLAW_URL": gw.url, "OPENCLAW_WEBHOOK_TOKEN": GATEWAY_TOKEN}
    issue = lin.create_issue("ENG", "Implement auth flow", "Bob Jones")      # before the start: not reported
    run = Orgloop(root, env)
    outputs: list[str] = []
    try:
        assert wait_until(run.running, timeout=60), "".join(run.output)
        # Linear: the issue changes state after the source has seen it once.
        seen = len(lin.requests)
        lin.update_issue(issue["id"], priority=2)
        assert wait_until(lambda: len(lin.requests) >= seen + 4, timeout=30)  # two polls since
        lin.update_issue(issue["id"], state="In Progress")
        # GitHub: a pull request and a review requesting changes (and a bot's comment nobody routes).
        gh.open_pull(REPO, 7, "alice", "Add widgets")
        gh.add_review(REPO, 7, "bob", "CHANGES_REQUESTED", "Please add tests for the parser.")
        gh.add_issue_comment(REPO, 7, "dependabot[bot]", "Bump parser to 2.0")
        # Claude Code's Stop hook.
        hook = subprocess.run([sys.executable, "-m", "orgloop", "hook", "claude-code-stop"], env=env, cwd=root,
                              input=json.dumps({"session_id": "sess-42", "cwd": str(root),
                                                "transcript_path": str(root / "t.jsonl"),
                                                "hook_event_name": "Stop"}),
                              capture_output=True, text=True, timeout=60)
        assert hook.returncode == 0, hook.stderr
        assert wait_until(lambda: len(_agent_posts(gw)) >= 3, timeout=60), (_agent_posts(gw), "".join(run.output))
    finally:
        assert run.stop() == 0, "".join(run.output)
        outputs.append("".join(run.output))

    posts = {p["sessionKey"]: p for p in _agent_posts(gw)}
    assert all(r.headers.get("Authorization") == f"Bearer {GATEWAY_TOKEN}"
               for r in gw.received if r.path == "/hooks/agent")
    review = posts["hook:github:pr-review:7"]
    assert review["agentId"] == actor_agent
    assert review["message"].startswith("[github] resource.changed (pull_request.review_submitted) by bob")
    assert "# PR review on #7" in review["message"]
    assert 'bob left a review (changes_requested) on "Add widgets"' in review["message"]
    assert "> Please add tests for the parser." in review["message"]
    linear_key = "hook:linear:ENG-1" if project == "engineering" else "orgloop:linear:resource.changed"
    assert "# Ticket ENG-1 is now In Progress" in posts[linear_key]["message"]
    session_key = "hook:claude-code:sess-42" if project == "engineering" else "orgloop:claude-code:actor.stopped"
    assert f"It worked in {root}." in posts[session_key]["message"]
    for p in posts.values():
        assert "{{" not in p["message"] and "name: pr-review" not in p["message"]   # rendered, front matter gone
    assert len(_agent_posts(gw)) == 3                     # the bot's comment and the early issue: no wake-up

    # A restart delivers nothing again: the pollers resume from their checkpoints.
    polled = len(gh.requests), len(lin.requests)
    again = Orgloop(root, env)
    try:
        assert wait_until(again.running, timeout=60), "".join(again.output)
        assert wait_until(lambda: len(gh.requests) >= polled[0] + 6 and len(lin.requests) >= polled[1] + 4,
                          timeout=30)
    finally:
        assert again.stop() == 0
        outputs.append("".join(again.output))
    assert len(_agent_posts(gw)) == 3
    logs = "".join(outputs) + "".join(p.read_text(errors="replace") for p in (tmp_path / "home").rglob("*.log"))
    for secret in (GH_TOKEN, LINEAR_KEY, GATEWAY_TOKEN):
        assert secret not in logs
