"""``github`` source: polls the GitHub REST API for pull-request activity of one or more repos.

Config (:class:`GithubConfig`): ``repo`` (``owner/name``) or ``repos`` (a list), ``token`` (usually
``${GITHUB_TOKEN}``; when absent the ``GITHUB_TOKEN`` environment variable is used), ``events``,
``authors``, ``api_url`` (GitHub Enterprise, tests), ``lookback`` (on the very first start, also report
activity this far back; default nothing before the start), ``per_page``, ``timeout``.

Every event is ``resource.changed`` with ``provenance.platform: github`` and ``platform_event`` one of
:data:`EVENTS`. Per repo and poll the source reads

- ``/pulls?state=all&sort=updated&direction=desc`` page by page until it reaches its cursor
  (``pull_request.opened|closed|merged``), and for each pull request updated since, its
  ``/reviews`` (``pull_request.review_submitted``);
- ``/issues/comments?since=`` (``issue_comment``) and ``/pulls/comments?since=``
  (``pull_request_review_comment``), following ``Link: rel="next"``;
- for the heads of open pull requests seen updated (at most 50 heads are watched):
  ``/commits/<sha>/check-runs`` (``check_run.completed``), ``/commits/<sha>/check-suites``
  (``check_suite.completed``) and ``/actions/runs?head_sha=<sha>`` (``workflow_run.completed``).

Each list keeps its own "updated since" cursor in the checkpoint (see ``_pollbase.TimeCursor``). The
first page of each list is asked with ``If-None-Match``; a 304 costs no rate limit. Event ids are
natural: the GitHub object id plus its ``updated_at`` (or ``submitted_at``/``completed_at``), so reading
the same activity twice gives the same id.

Rate limits: ``X-RateLimit-Remaining: 0`` pauses polling until ``X-RateLimit-Reset`` (read against the
server's ``Date``); a 403/429 with ``Retry-After`` (the secondary limit) pauses that long, and one
without it at least 60 s. Failures (network, 5xx, 401, malformed JSON) pause 5 s doubling to 15 min. A
paused source sends no request; its cursor never moves on a failed poll.

Provenance and payload are built by the same mapping as the ``github-webhook`` source's
(:mod:`orgloop.connectors.github_events`), from the REST objects put in webhook shape, so a route works
on either source. ``authors`` keeps events whose actor (or, for check runs, whose pull request's author)
is listed. ``author_type`` is ``bot`` for bot accounts, ``team_member`` for an
``OWNER``/``MEMBER``/``COLLABORATOR`` association, else ``external``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from pydantic import Field, SecretStr, field_validator, model_validator

from orgloop.connectors._apiclient import ApiError, JsonClient, Response
from orgloop.connectors._pollbase import PollingSource, RateLimited, TimeCursor
from orgloop.connectors.github_events import normalize
from orgloop.event import natural_event_id, new_trace_id
from orgloop.plugins import PluginConfig
from orgloop.units import DURATION_PATTERN

__all__ = ["GithubConfig", "GithubSource", "EVENTS"]

log = logging.getLogger("orgloop.connectors.github")

EVENTS = ("pull_request.opened", "pull_request.closed", "pull_request.merged", "pull_request.review_submitted",
          "pull_request_review_comment", "issue_comment", "check_run.completed", "check_suite.completed",
          "workflow_run.completed")
# Names published OrgLoop projects use that this poller does not read: accepted with a warning
# (the github-webhook source receives them).
NOT_POLLED = ("pull_request.ready_for_review",)
# Completed runs on a pull request's head: (kind, URL under /repos/<repo>/ for a sha, list key in the answer).
HEAD_RUNS = (("check_run", "commits/{sha}/check-runs?per_page=100", "check_runs"),
             ("check_suite", "commits/{sha}/check-suites?per_page=100", "check_suites"),
             ("workflow_run", "actions/runs?head_sha={sha}&per_page=100", "workflow_runs"))
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')
MAX_HEADS = 50


class GithubConfig(PluginConfig):
    repo: str | None = None
    repos: list[str] = Field(default_factory=list)
    token: SecretStr | None = None
    events: list[str] = Field(default_factory=lambda: list(EVENTS))
    authors: list[str] = Field(default_factory=list)
    api_url: str = "https://api.github.com"
    lookback: str = Field("0s", pattern=DURATION_PATTERN)
    per_page: int = Field(100, ge=1, le=100)
    timeout: float = Field(30.0, gt=0)

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        unknown = [e for e in value if e not in EVENTS and e not in NOT_POLLED]
        if unknown:
            raise ValueError(f"unknown github events {unknown}; known: {', '.join(EVENTS)}")
        return value

    @model_validator(mode="after")
    def _some_repo(self) -> "GithubConfig":
        names = self.all_repos()
        if not names:
            raise ValueError("give 'repo' (owner/name) or 'repos'")
        bad = [r for r in names if not _REPO.match(r)]
        if bad:
            raise ValueError(f"repos must be 'owner/name', not {bad}")
        return self

    def all_repos(self) -> list[str]:
        return ([self.repo] if self.repo else []) + [r for r in self.repos if r != self.repo]


def _login(user: Any) -> str:
    return user.get("login") or "unknown" if isinstance(user, dict) else "unknown"


def _number(url: Any) -> int | None:
    """The trailing number of an API URL such as ``…/issues/42``."""
    if isinstance(url, str):
        tail = url.rstrip("/").rsplit("/", 1)[-1]
        if tail.isdigit():
            return int(tail)
    return None


class _RepoPoll:
    """One poll of one repo: reads its lists and builds events; ``state`` is its part of the checkpoint."""

    def __init__(self, src: "GithubSource", repo: str, state: dict[str, Any], initial: str) -> None:
        self.src = src
        self.repo = repo
        self.state = state
        self.initial = initial
        self.events: list[dict[str, Any]] = []

    def run(self) -> dict[str, Any]:
        wanted = self.src.wanted
        new_state: dict[str, Any] = {}
        heads = {sha: dict(h) for sha, h in (self.state.get("heads") or {}).items() if isinstance(h, dict)}
        runs = [r for r in HEAD_RUNS if f"{r[0]}.completed" in wanted]
        if wanted & {"pull_request.opened", "pull_request.closed", "pull_request.merged",
                     "pull_request.review_submitted"} or runs:
            new_state["pulls"] = self._pulls(heads)
        if "issue_comment" in wanted:
            new_state["issue_comments"] = self._comments("issue_comments", "issues/comments", self._issue_comment)
        if "pull_request_review_comment" in wanted:
            new_state["review_comments"] = self._comments("review_comments", "pulls/comments", self._review_comment)
        if runs:
            self._head_runs(heads, runs)
            new_state["heads"] = heads
        return new_state

    # ---------------------------------------------------------------- lists
    def _pulls(self, heads: dict[str, Any]) -> dict[str, Any]:
        cursor = TimeCursor.load(self.state.get("pulls"), self.initial)
        url = f"/repos/{self.repo}/pulls?state=all&sort=updated&direction=desc&per_page={self.src.config.per_page}"
        fresh: list[dict[str, Any]] = []
        for page in self.src.pages(url):
            done = False
            for pr in page:
                stamp = pr.get("updated_at") or ""
                if stamp < cursor.since:
                    done = True
                    break
                if cursor.is_new(stamp, f"pr:{pr.get('id')}:{stamp}"):
                    fresh.append(pr)
            if done:
                break
        for pr in sorted(fresh, key=lambda p: p.get("updated_at") or ""):
            self._pull_request(pr, cursor, heads)
            cursor.advance(pr["updated_at"], f"pr:{pr.get('id')}:{pr['updated_at']}")
        return cursor.dump()

    def _comments(self, name: str, path: str, build: Callable[[dict[str, Any]], dict[str, Any] | None]
                  ) -> dict[str, Any]:
        cursor = TimeCursor.load(self.state.get(name), self.initial)
        url = (f"/repos/{self.repo}/{path}?since={cursor.since}&sort=updated&direction=asc"
               f"&per_page={self.src.config.per_page}")
        for page in self.src.pages(url):
            for comment in page:
                stamp = comment.get("updated_at") or ""
                key = f"c:{comment.get('id')}:{stamp}"
                if not cursor.is_new(stamp, key):
                    continue
                event = build(comment)
                if event is not None:
                    self.events.append(event)
                cursor.advance(stamp, key)
        return cursor.dump()

    # ---------------------------------------------------------------- events
    def _pull_request(self, pr: dict[str, Any], cursor: TimeCursor, heads: dict[str, Any]) -> None:
        wanted = self.src.wanted
        pid, number = pr.get("id"), pr.get("number")
        as_delivered = {**pr, "merged": bool(pr.get("merged_at"))}      # the webhook object has 'merged'

        def new_at(stamp: Any) -> bool:
            return isinstance(stamp, str) and cursor.is_new(stamp, f"pr:{pid}:{stamp}")

        if new_at(pr.get("created_at")):
            self._emit("pull_request", {"action": "opened", "pull_request": as_delivered}, (pid, "opened"),
                       pr["created_at"])
        if new_at(pr.get("closed_at")):
            self._emit("pull_request", {"action": "closed", "pull_request": as_delivered},
                       (pid, "closed", pr["closed_at"]), pr["closed_at"])
        if "pull_request.review_submitted" in wanted:
            for page in self.src.pages(f"/repos/{self.repo}/pulls/{number}/reviews?per_page={self.src.config.per_page}"):
                for review in page:
                    stamp = review.get("submitted_at")
                    if new_at(stamp):
                        # The REST API spells states in capitals, webhook deliveries in lower case.
                        state = str(review.get("state") or "").lower()
                        self._emit("pull_request_review", {"action": "submitted", "pull_request": pr,
                                                           "review": {**review, "state": state}},
                                   (review.get("id"), state, stamp), stamp)
        sha = (pr.get("head") or {}).get("sha")
        if any(f"{r[0]}.completed" in wanted for r in HEAD_RUNS) and pr.get("state") == "open" and isinstance(sha, str):
            for old in [s for s, h in heads.items() if h.get("pr_id") == pid and s != sha]:
                del heads[old]                     # a new commit replaces the old head
            head = heads.pop(sha, None) or {"pr_id": pid, "done": []}
            head.update(pr=number, title=pr.get("title"), author=_login(pr.get("user")))
            heads[sha] = head                      # most recently updated last
            while len(heads) > MAX_HEADS:
                del heads[next(iter(heads))]

    def _issue_comment(self, c: dict[str, Any]) -> dict[str, Any] | None:
        issue: dict[str, Any] = {"number": _number(c.get("issue_url"))}
        if "/pull/" in str(c.get("html_url", "")):
            issue["pull_request"] = {"html_url": c.get("html_url")}
        return self._emit("issue_comment", {"action": "created", "comment": c, "issue": issue},
                          (c.get("id"), c.get("updated_at")), c.get("updated_at"),
                          payload={"comment_id": c.get("id"), "edited": c.get("created_at") != c.get("updated_at")},
                          collect=False)

    def _review_comment(self, c: dict[str, Any]) -> dict[str, Any] | None:
        pr = {"number": _number(c.get("pull_request_url"))}
        return self._emit("pull_request_review_comment", {"action": "created", "comment": c, "pull_request": pr},
                          (c.get("id"), c.get("updated_at")), c.get("updated_at"),
                          payload={"comment_id": c.get("id"), "edited": c.get("created_at") != c.get("updated_at")},
                          collect=False)

    def _head_runs(self, heads: dict[str, Any], runs: list[tuple[str, str, str]]) -> None:
        """Completed check runs, check suites and workflow runs of the watched heads, each reported once."""
        for sha, head in list(heads.items()):
            done = set(head.get("done") or [])
            for kind, path, key in runs:
                answer = self.src.get_json(f"/repos/{self.repo}/" + path.format(sha=sha), etag=True)
                if answer is None:
                    continue                       # 304: nothing changed
                items = answer.get(key) if isinstance(answer, dict) else None
                if not isinstance(items, list):
                    raise ApiError(f"{key} of {sha[:12]}: expected an object with '{key}'")
                for run in items:
                    mark = f"{kind}:{run.get('id')}" if isinstance(run, dict) else ""
                    if not mark or run.get("status") != "completed" or mark in done:
                        continue
                    done.add(mark)
                    prs = run.get("pull_requests") or [{"number": head.get("pr")}]
                    self._emit(kind, {"action": "completed", kind: {**run, "pull_requests": prs}},
                               (run.get("id"), run.get("updated_at") or run.get("completed_at")),
                               run.get("completed_at") or run.get("updated_at"),
                               provenance={"pr_number": head.get("pr"), "pr_author": head.get("author")},
                               payload={"pr_title": head.get("title")}, filter_author=head.get("author"))
            head["done"] = sorted(done)

    def _emit(self, kind: str, body: dict[str, Any], key: tuple[Any, ...], stamp: Any, *,
              provenance: dict[str, Any] | None = None, payload: dict[str, Any] | None = None,
              collect: bool = True, filter_author: str | None = None) -> dict[str, Any] | None:
        """Build the event the ``github-webhook`` source would build for the same activity (one mapping:
        :func:`orgloop.connectors.github_events.normalize`), if its name is wanted and its author listed."""
        name, prov, data = normalize(kind, {**body, "repository": {"full_name": self.repo}})
        authors = self.src.authors
        if name not in self.src.wanted or (authors and (filter_author or prov["author"]).lower() not in authors):
            return None
        event = {
            "id": natural_event_id(self.src.id, self.repo, name, *(str(k) for k in key)),
            "timestamp": stamp if isinstance(stamp, str) and stamp else self.src.stamp(self.src.clock()),
            "source": self.src.id,
            "type": "resource.changed",
            "provenance": {**prov, **(provenance or {})},
            "payload": {**data, **(payload or {})},
            "trace_id": new_trace_id(),
        }
        if collect:
            self.events.append(event)
        return event


class GithubSource(PollingSource):
    config_model = GithubConfig
    platform = "github"
    empty_state = {"v": 1}

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = cfg = GithubConfig.model_validate(config)
        super().__init__(source_id, api_url=cfg.api_url, timeout=cfg.timeout, lookback=cfg.lookback,
                         clock=clock, log=log)
        self.repos = cfg.all_repos()
        self.wanted = set(cfg.events)
        skipped = sorted(self.wanted & set(NOT_POLLED))
        if skipped:
            log.warning("github source %s: %s are not polled (use a github-webhook source for them)",
                        source_id, ", ".join(skipped))
        self.authors = {a.lower() for a in cfg.authors}
        token = cfg.token.get_secret_value() if cfg.token is not None else os.environ.get("GITHUB_TOKEN", "")
        self._headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        else:
            log.warning("github source %s: no token (config.token or GITHUB_TOKEN); the anonymous rate limit "
                        "is 60 requests an hour", source_id)
        self._etags: dict[str, str] = {}        # first-page URL -> ETag, of answers fully processed
        self._new_etags: dict[str, str] = {}

    @staticmethod
    def stamp(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def read(self, state: dict[str, Any], initial: str, events: list[dict[str, Any]]) -> None:
        repos = state.setdefault("repos", {})
        for repo in self.repos:
            self._new_etags = {}
            run = _RepoPoll(self, repo, repos.get(repo) or {}, initial)
            repos[repo] = run.run()             # only a repo read to the end moves its cursors
            events.extend(run.events)
            self._etags.update(self._new_etags)  # and only then may its answers be taken as seen

    # ---------------------------------------------------------------- HTTP
    def get_json(self, url: str, *, etag: bool = False) -> Any:
        """GET one resource; None when ``etag`` is set and the server answers 304 Not Modified."""
        resp = self._get(url, etag)
        return None if resp is None else resp.json()

    def pages(self, url: str) -> Iterator[list[dict[str, Any]]]:
        """The pages of a list, following ``Link: rel="next"``; nothing when the first page is unchanged (304)."""

        def fetch(nxt: str | None) -> tuple[list[dict[str, Any]], str | None]:
            resp = self._get(nxt or url, etag=nxt is None)
            if resp is None:
                return [], None
            page = resp.json()
            if not isinstance(page, list):
                raise ApiError(f"{(nxt or url).split('?')[0]}: expected a JSON list, got {type(page).__name__}",
                               resp.status)
            m = _LINK_NEXT.search(resp.header("link") or "")
            return [item for item in page if isinstance(item, dict)], m.group(1) if m else None

        return self.paged(fetch, url.split("?")[0])

    def _get(self, url: str, etag: bool) -> Response | None:
        headers = dict(self._headers)
        if etag and url in self._etags:
            headers["If-None-Match"] = self._etags[url]
        self.requests += 1
        resp = self.client.request("GET", url, headers=headers)
        self._check(resp)
        if resp.status == 304:
            return None
        tag = resp.header("etag")
        if etag and tag:
            self._new_etags[url] = tag
        return resp

    def _check(self, resp: Response) -> None:
        """Raise :class:`RateLimited` or :class:`ApiError` for an answer that is not a success."""
        remaining = resp.header("x-ratelimit-remaining")
        if resp.status in (200, 304):
            if remaining == "0":
                # Used up by this request: what we read is fine, the next request must wait.
                self.gate.limited(RateLimited("rate limit used up", self._reset_wait(resp)))
            return
        if resp.status in (403, 429):
            retry_after = resp.header("retry-after")
            if retry_after and retry_after.strip().isdigit():
                raise RateLimited(f"secondary rate limit (HTTP {resp.status}, Retry-After {retry_after})",
                                  float(retry_after))
            if remaining == "0":
                raise RateLimited(f"primary rate limit exhausted (HTTP {resp.status})", self._reset_wait(resp))
            if resp.status == 429 or b"rate limit" in resp.body.lower():
                raise RateLimited(f"secondary rate limit (HTTP {resp.status})", 60.0)
        message = ""
        try:
            body = json.loads(resp.body)
            message = str(body.get("message", ""))[:200] if isinstance(body, dict) else ""
        except ValueError:
            pass
        raise ApiError(f"HTTP {resp.status}{': ' + message if message else ''}", resp.status)

    def _reset_wait(self, resp: Response) -> float:
        reset = resp.header("x-ratelimit-reset")
        if not reset or not reset.strip().isdigit():
            return 60.0
        return self.wait_until(resp, int(reset))
