"""A fake GitHub REST API: pull requests, reviews, comments and check runs, in GitHub's JSON shapes.

It answers ``If-None-Match`` with 304 (free of rate limit, as GitHub does), paginates with ``Link``
headers, counts a primary rate limit (``X-RateLimit-*`` on every answer; 403 once used up, until the reset
time of the fake's clock) and can answer a secondary rate limit (403 + ``Retry-After``). Mutators stamp
objects with the fake's clock, so ``updated_at`` moves like GitHub's.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, Callable

from fakes.base import Answer, FakeServer, Request

_ROUTES = [
    (re.compile(r"^/repos/([^/]+/[^/]+)/pulls$"), "pulls"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/pulls/(\d+)/reviews$"), "reviews"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/issues/comments$"), "issue_comments"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/pulls/comments$"), "review_comments"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/check-runs$"), "check_runs"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/check-suites$"), "check_suites"),
    (re.compile(r"^/repos/([^/]+/[^/]+)/actions/runs$"), "workflow_runs"),
]


def _user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10**8, "type": kind,
            "html_url": f"https://github.com/{login}", "site_admin": False}


class FakeGitHub(FakeServer):
    def __init__(self, clock: Callable[[], float] = time.time, *, token: str | None = None,
                 rate_limit: int = 5000) -> None:
        super().__init__(clock)
        self.token = token
        self.limit = rate_limit
        self.remaining = rate_limit
        self.reset_at = int(clock()) + 3600
        self.repos: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1_000_001)
        self._secondary: list[int] = []
        self.served_304 = 0

    # ------------------------------------------------------------------ data
    def stamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _repo(self, repo: str) -> dict[str, Any]:
        return self.repos.setdefault(repo, {"pulls": {}, "reviews": {}, "issue_comments": [], "review_comments": [],
                                            "check_runs": {}, "check_suites": {}, "workflow_runs": []})

    def open_pull(self, repo: str, number: int, author: str, title: str, *, association: str = "MEMBER",
                  draft: bool = False) -> dict[str, Any]:
        now = self.stamp()
        sha = hashlib.sha1(f"{repo}#{number}".encode()).hexdigest()
        pr = {"url": f"https://api.github.com/repos/{repo}/pulls/{number}", "id": next(self._ids),
              "html_url": f"https://github.com/{repo}/pull/{number}", "number": number, "state": "open",
              "locked": False, "title": title, "user": _user(author, "Bot" if author.endswith("[bot]") else "User"),
              "body": f"{title}\n\nDescription.", "created_at": now, "updated_at": now, "closed_at": None,
              "merged_at": None, "merged_by": None, "draft": draft, "author_association": association,
              "head": {"label": f"{author}:feature-{number}", "ref": f"feature-{number}", "sha": sha},
              "base": {"label": "main", "ref": "main", "sha": "0" * 40}}
        with self.lock:
            self._repo(repo)["pulls"][number] = pr
        return pr

    def _touch(self, repo: str, number: int) -> dict[str, Any]:
        pr = self._repo(repo)["pulls"][number]
        pr["updated_at"] = self.stamp()
        return pr

    def close_pull(self, repo: str, number: int, *, merged_by: str | None = None) -> None:
        with self.lock:
            pr = self._touch(repo, number)
            pr.update(state="closed", closed_at=pr["updated_at"])
            if merged_by:
                pr.update(merged_at=pr["updated_at"], merged_by=_user(merged_by))

    def add_review(self, repo: str, number: int, reviewer: str, state: str, body: str) -> dict[str, Any]:
        with self.lock:
            pr = self._touch(repo, number)
            review = {"id": next(self._ids), "user": _user(reviewer), "body": body, "state": state,
                      "html_url": f"{pr['html_url']}#pullrequestreview-{len(self._repo(repo)['reviews'])}",
                      "submitted_at": pr["updated_at"], "commit_id": pr["head"]["sha"],
                      "author_association": "MEMBER"}
            self._repo(repo)["reviews"].setdefault(number, []).append(review)
        return review

    def add_issue_comment(self, repo: str, number: int, author: str, body: str, *,
                          association: str = "CONTRIBUTOR") -> dict[str, Any]:
        with self.lock:
            now = self.stamp()
            cid = next(self._ids)
            is_pr = number in self._repo(repo)["pulls"]
            if is_pr:
                self._touch(repo, number)
            comment = {"url": f"https://api.github.com/repos/{repo}/issues/comments/{cid}",
                       "html_url": f"https://github.com/{repo}/{'pull' if is_pr else 'issues'}/{number}#issuecomment-{cid}",
                       "issue_url": f"https://api.github.com/repos/{repo}/issues/{number}", "id": cid,
                       "user": _user(author, "Bot" if author.endswith("[bot]") else "User"), "created_at": now,
                       "updated_at": now, "author_association": association, "body": body}
            self._repo(repo)["issue_comments"].append(comment)
        return comment

    def edit_issue_comment(self, repo: str, comment_id: int, body: str) -> None:
        with self.lock:
            for c in self._repo(repo)["issue_comments"]:
                if c["id"] == comment_id:
                    c.update(body=body, updated_at=self.stamp())

    def add_review_comment(self, repo: str, number: int, author: str, body: str, path: str) -> dict[str, Any]:
        with self.lock:
            pr = self._touch(repo, number)
            cid = next(self._ids)
            comment = {"url": f"https://api.github.com/repos/{repo}/pulls/comments/{cid}", "id": cid,
                       "pull_request_review_id": next(self._ids), "diff_hunk": "@@ -1,3 +1,4 @@\n def f():",
                       "path": path, "commit_id": pr["head"]["sha"], "user": _user(author), "body": body,
                       "created_at": pr["updated_at"], "updated_at": pr["updated_at"],
                       "html_url": f"{pr['html_url']}#discussion_r{cid}",
                       "pull_request_url": pr["url"], "author_association": "MEMBER"}
            self._repo(repo)["review_comments"].append(comment)
        return comment

    def check_run(self, repo: str, number: int, name: str, *, conclusion: str | None = None) -> dict[str, Any]:
        """Start a check run on the pull request's head, or complete it (``conclusion`` given)."""
        with self.lock:
            sha = self._repo(repo)["pulls"][number]["head"]["sha"]
            runs = self._repo(repo)["check_runs"].setdefault(sha, [])
            run = next((r for r in runs if r["name"] == name), None)
            if run is None:
                rid = next(self._ids)
                run = {"id": rid, "head_sha": sha, "name": name, "status": "in_progress", "conclusion": None,
                       "started_at": self.stamp(), "completed_at": None,
                       "html_url": f"https://github.com/{repo}/runs/{rid}",
                       "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
                       "pull_requests": [{"number": number}]}
                runs.append(run)
            if conclusion:
                run.update(status="completed", conclusion=conclusion, completed_at=self.stamp())
        return run

    def check_suite(self, repo: str, number: int, *, conclusion: str) -> dict[str, Any]:
        """A completed check suite of GitHub Actions on the pull request's head."""
        with self.lock:
            sha = self._repo(repo)["pulls"][number]["head"]["sha"]
            now = self.stamp()
            suite = {"id": next(self._ids), "head_branch": f"feature-{number}", "head_sha": sha,
                     "status": "completed", "conclusion": conclusion, "created_at": now, "updated_at": now,
                     "url": f"https://api.github.com/repos/{repo}/check-suites/{next(self._ids)}",
                     "app": {"id": 15368, "slug": "github-actions", "name": "GitHub Actions"},
                     "pull_requests": [{"number": number}]}
            self._repo(repo)["check_suites"].setdefault(sha, []).append(suite)
        return suite

    def workflow_run(self, repo: str, number: int, name: str, *, conclusion: str | None = None,
                     actor: str = "alice") -> dict[str, Any]:
        """Start a workflow run on the pull request's head, or complete it (``conclusion`` given)."""
        with self.lock:
            pr = self._repo(repo)["pulls"][number]
            runs = self._repo(repo)["workflow_runs"]
            run = next((r for r in runs if r["name"] == name and r["head_sha"] == pr["head"]["sha"]), None)
            if run is None:
                rid = next(self._ids)
                run = {"id": rid, "name": name, "head_branch": pr["head"]["ref"], "head_sha": pr["head"]["sha"],
                       "run_number": len(runs) + 1, "event": "pull_request", "status": "in_progress",
                       "conclusion": None, "created_at": self.stamp(), "updated_at": self.stamp(),
                       "html_url": f"https://github.com/{repo}/actions/runs/{rid}", "actor": _user(actor),
                       "pull_requests": [{"number": number}]}
                runs.append(run)
            if conclusion:
                run.update(status="completed", conclusion=conclusion, updated_at=self.stamp())
        return run

    # ------------------------------------------------------------------ limits
    def secondary_next(self, retry_after: int) -> None:
        """Answer the next request with a secondary rate limit (403 + Retry-After)."""
        with self.lock:
            self._secondary.append(retry_after)

    def exhaust(self, reset_in: float) -> None:
        """Use up the primary rate limit; it resets ``reset_in`` seconds from now on the fake's clock."""
        with self.lock:
            self.remaining = 0
            self.reset_at = int(self.clock() + reset_in)

    def _limit_headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_at), "X-RateLimit-Used": str(self.limit - self.remaining),
                "X-RateLimit-Resource": "core"}

    # ------------------------------------------------------------------ serving
    def handle(self, req: Request) -> Answer:
        with self.lock:
            if self.token and req.headers.get("authorization") != f"Bearer {self.token}":
                return Answer.json(401, {"message": "Bad credentials",
                                         "documentation_url": "https://docs.github.com/rest"})
            if self._secondary:
                return Answer.json(403, {"message": "You have exceeded a secondary rate limit. Please wait a few "
                                                    "minutes before you try again."},
                                   {"Retry-After": str(self._secondary.pop(0))})
            if self.clock() >= self.reset_at:
                self.remaining, self.reset_at = self.limit, int(self.clock()) + 3600
            if self.remaining <= 0:
                return Answer.json(403, {"message": "API rate limit exceeded for user ID 1.",
                                         "documentation_url": "https://docs.github.com/rest/overview/rate-limits"},
                                   self._limit_headers())
            status, obj, link = self._route(req)
            body = json.dumps(obj).encode()
            etag = 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            if status == 200 and req.headers.get("if-none-match") == etag:
                self.served_304 += 1
                return Answer(304, b"", {"ETag": etag, **self._limit_headers()})
            self.remaining -= 1
            headers = {"Content-Type": "application/json; charset=utf-8", "ETag": etag, **self._limit_headers()}
            if link:
                headers["Link"] = link
            return Answer(status, body, headers)

    def _route(self, req: Request) -> tuple[int, Any, str | None]:
        for pattern, name in _ROUTES:
            m = pattern.match(req.path)
            if m and req.method == "GET":
                repo = self._repo(m.group(1))
                if name == "pulls":
                    items = sorted(repo["pulls"].values(), key=lambda p: p["updated_at"],
                                   reverse=req.query.get("direction", "desc") == "desc")
                    if req.query.get("state", "open") != "all":
                        items = [p for p in items if p["state"] == req.query.get("state", "open")]
                elif name == "reviews":
                    items = list(repo["reviews"].get(int(m.group(2)), []))
                elif name in ("check_runs", "check_suites"):
                    runs = repo[name].get(m.group(2), [])
                    return 200, {"total_count": len(runs), name: runs}, None
                elif name == "workflow_runs":
                    runs = [r for r in repo[name] if r["head_sha"] == req.query.get("head_sha", r["head_sha"])]
                    return 200, {"total_count": len(runs), name: runs}, None
                else:
                    since = req.query.get("since", "")
                    items = sorted((c for c in repo[name] if c["updated_at"] >= since), key=lambda c: c["updated_at"])
                return (200, *self._page(req, items))
        return 404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, None

    def _page(self, req: Request, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
        per_page = int(req.query.get("per_page", 30))
        page = int(req.query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        if page * per_page >= len(items):
            return chunk, None
        query = "&".join(f"{k}={v}" for k, v in {**req.query, "page": str(page + 1)}.items())
        last = "&".join(f"{k}={v}" for k, v in {**req.query, "page": str(-(-len(items) // per_page))}.items())
        return chunk, f'<{self.url}{req.path}?{query}>; rel="next", <{self.url}{req.path}?{last}>; rel="last"'
