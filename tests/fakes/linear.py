"""A fake Linear GraphQL API: issues and comments of teams, in Linear's JSON shapes.

It does not parse GraphQL: it tells the ``issues`` query from the ``comments`` query by the field name and
applies the variables a client sends (``filter.updatedAt.gte``, the team key and project name, ``first``
and ``after``). It can answer a rate limit (HTTP 400 with a ``RATELIMITED`` error and
``X-RateLimit-Requests-*`` headers, as Linear does) and a GraphQL error with no data.
"""
from __future__ import annotations

import base64
import itertools
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from fakes.base import Answer, FakeServer, Request


class FakeLinear(FakeServer):
    def __init__(self, clock: Callable[[], float] = time.time, *, api_key: str | None = None) -> None:
        super().__init__(clock)
        self.api_key = api_key
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self._limited: list[float] = []
        self._gql_errors = 0

    def stamp(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")

    # ------------------------------------------------------------------ data
    def create_issue(self, team: str, title: str, creator: str, *, state: str = "Todo", project: str | None = None,
                     priority: int = 0) -> dict[str, Any]:
        with self.lock:
            now = self.stamp()
            ident = f"{team}-{next(self._numbers)}"
            issue = {"id": str(uuid.uuid4()), "identifier": ident, "title": title,
                     "url": f"https://linear.app/acme/issue/{ident}/{title.lower().replace(' ', '-')}",
                     "priority": priority, "createdAt": now, "updatedAt": now,
                     "state": {"name": state, "type": "unstarted"}, "assignee": None,
                     "creator": {"name": creator.lower(), "displayName": creator},
                     "labels": {"nodes": []}, "project": {"name": project} if project else None,
                     "team": {"key": team}}
            self.issues[issue["id"]] = issue
        return issue

    def update_issue(self, issue_id: str, *, state: str | None = None, assignee: str | None = None,
                     priority: int | None = None, labels: list[str] | None = None) -> None:
        with self.lock:
            issue = self.issues[issue_id]
            if state is not None:
                issue["state"] = {"name": state, "type": "started"}
            if assignee is not None:
                issue["assignee"] = {"name": assignee.lower(), "displayName": assignee}
            if priority is not None:
                issue["priority"] = priority
            if labels is not None:
                issue["labels"] = {"nodes": [{"name": n} for n in labels]}
            issue["updatedAt"] = self.stamp()

    def add_comment(self, issue_id: str, author: str, body: str) -> dict[str, Any]:
        with self.lock:
            issue = self.issues[issue_id]
            now = self.stamp()
            cid = str(uuid.uuid4())
            comment = {"id": cid, "body": body, "url": f"{issue['url']}#comment-{cid[:8]}", "createdAt": now,
                       "updatedAt": now, "user": {"name": author.lower(), "displayName": author},
                       "issue": {k: issue[k] for k in ("id", "identifier", "title", "url")}, "_team": issue["team"],
                       "_project": issue["project"]}
            self.comments.append(comment)
        return comment

    # ------------------------------------------------------------------ faults
    def rate_limit_next(self, reset_in: float) -> None:
        with self.lock:
            self._limited.append(reset_in)

    def graphql_error_next(self) -> None:
        with self.lock:
            self._gql_errors += 1

    # ------------------------------------------------------------------ serving
    def handle(self, req: Request) -> Answer:
        with self.lock:
            if req.method != "POST":
                return Answer.json(405, {"errors": [{"message": "POST only"}]})
            if self.api_key and req.headers.get("authorization") != self.api_key:
                return Answer.json(401, {"errors": [{"message": "Authentication required, not authenticated",
                                                     "extensions": {"code": "AUTHENTICATION_ERROR"}}]})
            if self._limited:
                reset = int((self.clock() + self._limited.pop(0)) * 1000)
                return Answer.json(400, {"errors": [{"message": "Rate limit exceeded",
                                                     "extensions": {"code": "RATELIMITED"}}]},
                                   {"X-RateLimit-Requests-Limit": "1500", "X-RateLimit-Requests-Remaining": "0",
                                    "X-RateLimit-Requests-Reset": str(reset)})
            if self._gql_errors:
                self._gql_errors -= 1
                return Answer.json(200, {"errors": [{"message": "Cannot query field", "extensions":
                                                     {"code": "GRAPHQL_VALIDATION_FAILED"}}]})
            body = req.json()
            query, variables = body.get("query", ""), body.get("variables") or {}
            filt = variables.get("filter") or {}
            since = ((filt.get("updatedAt") or {}).get("gte")) or ""
            if "issues(" in query:
                items = [i for i in self.issues.values() if self._scoped(i["team"], i["project"], filt)]
                field = "issues"
            elif "comments(" in query:
                items = [c for c in self.comments if self._scoped(c["_team"], c["_project"], filt.get("issue") or {})]
                field = "comments"
            else:
                return Answer.json(400, {"errors": [{"message": "unknown query"}]})
            items = sorted((i for i in items if i["updatedAt"] >= since), key=lambda i: i["updatedAt"], reverse=True)
            first = int(variables.get("first") or 50)
            start = int(base64.b64decode(variables["after"])) if variables.get("after") else 0
            page = [{k: v for k, v in i.items() if not k.startswith("_") and k != "team"}
                    for i in items[start:start + first]]
            more = start + first < len(items)
            return Answer.json(200, {"data": {field: {"nodes": page, "pageInfo": {
                "hasNextPage": more, "endCursor": base64.b64encode(str(start + first).encode()).decode()}}}},
                {"X-RateLimit-Requests-Limit": "1500", "X-RateLimit-Requests-Remaining": "1499"})

    @staticmethod
    def _scoped(team: dict[str, Any], project: dict[str, Any] | None, filt: dict[str, Any]) -> bool:
        want_team = ((filt.get("team") or {}).get("key") or {}).get("eq")
        want_project = ((filt.get("project") or {}).get("name") or {}).get("eq")
        return ((want_team is None or team["key"] == want_team)
                and (want_project is None or (project or {}).get("name") == want_project))
