"""``linear`` source: polls Linear's GraphQL API for issue, state and comment activity of a team.

Config (:class:`LinearConfig`): ``team`` (the team key, e.g. ``ENG``), ``project`` (optional: only issues
of this project, by name), ``api_key`` (usually ``${LINEAR_API_KEY}``; when absent the ``LINEAR_API_KEY``
environment variable is used), ``lookback`` (on the very first start, also report activity this far back),
``api_url`` (default ``https://api.linear.app/graphql``), ``page_size``, ``timeout``.

Each poll asks for the team's issues and comments updated since the cursor (``updatedAt`` filters,
``pageInfo`` pagination), one cursor per list with the ids already reported at exactly its timestamp.
Every event is ``resource.changed`` with ``provenance.platform: linear`` and ``platform_event``:

- ``issue.created``: an issue created since the cursor;
- ``issue.state_changed``, ``issue.assignee_changed``, ``issue.priority_changed``,
  ``issue.labels_changed``: a change against the issue as last seen (the last-seen fields of up to
  :data:`MAX_TRACKED` issues are kept in the checkpoint, so changes made while orgloop was down are
  reported after a restart; an issue first seen after it was created is recorded, not reported);
- ``comment.created``: a comment created since the cursor (edits are not reported).

Ids are natural (decisions.md): ``(issue id, updatedAt, kind)`` for issue events, ``(comment id,
updatedAt)`` for comments. Rate limits (HTTP 429, or a ``RATELIMITED`` GraphQL error) pause the source
until ``X-RateLimit-Requests-Reset``; failures (network, 5xx, 401, GraphQL errors, malformed JSON) pause it
5 s doubling to 15 min. Cursors move only when a whole poll succeeded.
"""
from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, SecretStr

from orgloop.connectors._apiclient import ApiError, JsonClient, Response
from orgloop.connectors._pollbase import PollingSource, RateLimited, TimeCursor
from orgloop.event import natural_event_id, new_trace_id
from orgloop.plugins import PluginConfig
from orgloop.units import DURATION_PATTERN

__all__ = ["LinearConfig", "LinearSource", "MAX_TRACKED"]

log = logging.getLogger("orgloop.connectors.linear")

MAX_TRACKED = 2000

ISSUES_QUERY = """
query OrgloopIssues($filter: IssueFilter, $first: Int, $after: String) {
  issues(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
    nodes {
      id identifier title url priority createdAt updatedAt
      state { name type }
      assignee { name displayName }
      creator { name displayName }
      labels { nodes { name } }
      project { name }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

COMMENTS_QUERY = """
query OrgloopComments($filter: CommentFilter, $first: Int, $after: String) {
  comments(filter: $filter, first: $first, after: $after, orderBy: updatedAt) {
    nodes {
      id body url createdAt updatedAt
      user { name displayName }
      issue { id identifier title url }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


class LinearConfig(PluginConfig):
    team: str = Field(min_length=1)
    project: str | None = None
    api_key: SecretStr | None = None
    lookback: str = Field("0s", pattern=DURATION_PATTERN)
    api_url: str = "https://api.linear.app/graphql"
    page_size: int = Field(50, ge=1, le=250)
    timeout: float = Field(30.0, gt=0)


def _name(user: Any) -> str | None:
    if isinstance(user, dict):
        return user.get("displayName") or user.get("name")
    return None


def _fields(issue: dict[str, Any]) -> list[Any]:
    """What a change is detected on: [state, assignee, priority, labels]."""
    labels = (issue.get("labels") or {}).get("nodes") or []
    return [(issue.get("state") or {}).get("name"), _name(issue.get("assignee")), issue.get("priority"),
            sorted(str(lb.get("name")) for lb in labels if isinstance(lb, dict))]


_CHANGES = (("issue.state_changed", "state_changed", "state"), ("issue.assignee_changed", "assignee_changed", "assignee"),
            ("issue.priority_changed", "priority_changed", "priority"),
            ("issue.labels_changed", "labels_changed", "labels"))


class LinearSource(PollingSource):
    config_model = LinearConfig
    platform = "linear"

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = cfg = LinearConfig.model_validate(config)
        super().__init__(source_id, api_url=cfg.api_url, timeout=cfg.timeout, lookback=cfg.lookback,
                         clock=clock, log=log)
        key = cfg.api_key.get_secret_value() if cfg.api_key is not None else os.environ.get("LINEAR_API_KEY", "")
        if not key:
            log.warning("linear source %s: no api_key (config.api_key or LINEAR_API_KEY); Linear will refuse "
                        "the requests", source_id)
        self._headers = {"Authorization": key} if key else {}

    @staticmethod
    def stamp(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def read(self, state: dict[str, Any], initial: str, events: list[dict[str, Any]]) -> None:
        issues = TimeCursor.load(state.get("issues"), initial)
        comments = TimeCursor.load(state.get("comments"), initial)
        tracked = dict(state.get("tracked") or {})       # issue id -> last-seen fields, oldest first
        # An interrupted poll raises here: it reports nothing and moves no cursor.
        found = self._issues(issues, tracked) + self._comments(comments)
        while len(tracked) > MAX_TRACKED:
            del tracked[next(iter(tracked))]
        state.update(issues=issues.dump(), comments=comments.dump(), tracked=tracked)
        events.extend(found)

    # ---------------------------------------------------------------- lists
    def _filter(self, since: str, *, nested: bool) -> dict[str, Any]:
        scope: dict[str, Any] = {"team": {"key": {"eq": self.config.team}}}
        if self.config.project:
            scope["project"] = {"name": {"eq": self.config.project}}
        return {"updatedAt": {"gte": since}, **({"issue": scope} if nested else scope)}

    def _issues(self, cursor: TimeCursor, tracked: dict[str, Any]) -> list[dict[str, Any]]:
        fresh = [i for i in self._nodes(ISSUES_QUERY, "issues", self._filter(cursor.since, nested=False))
                 if cursor.is_new(i.get("updatedAt") or "", f"i:{i.get('id')}:{i.get('updatedAt')}")]
        events: list[dict[str, Any]] = []
        for issue in sorted(fresh, key=lambda i: i.get("updatedAt") or ""):
            iid, stamp = str(issue.get("id")), issue.get("updatedAt") or ""
            now = _fields(issue)
            before = tracked.pop(iid, None)
            tracked[iid] = now                   # most recently updated last
            if before is None:
                created = issue.get("createdAt") or ""
                if cursor.is_new(created, f"i:{iid}:{created}"):
                    events.append(self._issue_event(issue, "issue.created", "created", {}))
            else:
                for i, (kind, action, label) in enumerate(_CHANGES):     # in the order of _fields
                    if before[i] != now[i]:
                        events.append(self._issue_event(issue, kind, action,
                                                        {f"previous_{label}": before[i], f"new_{label}": now[i]}))
            cursor.advance(stamp, f"i:{iid}:{stamp}")
        return events

    def _comments(self, cursor: TimeCursor) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        nodes = self._nodes(COMMENTS_QUERY, "comments", self._filter(cursor.since, nested=True))
        for c in sorted(nodes, key=lambda c: c.get("updatedAt") or ""):
            stamp, key = c.get("updatedAt") or "", f"c:{c.get('id')}:{c.get('updatedAt')}"
            if not cursor.is_new(stamp, key):
                continue
            created = c.get("createdAt") or ""
            if created == stamp or cursor.is_new(created, f"c:{c.get('id')}:{created}"):
                issue = c.get("issue") or {}
                author = _name(c.get("user"))
                events.append(self._event(
                    "comment.created", (c.get("id"), stamp), created or stamp,
                    {"author": author or "unknown", "author_type": "team_member" if author else "system",
                     "issue_id": issue.get("identifier"), "url": c.get("url") or issue.get("url")},
                    {"action": "comment_created", "issue_id": issue.get("identifier"),
                     "issue_title": issue.get("title"), "comment_id": c.get("id"), "comment_body": c.get("body")}))
            cursor.advance(stamp, key)
        return events

    def _issue_event(self, issue: dict[str, Any], kind: str, action: str, change: dict[str, Any]) -> dict[str, Any]:
        state = (issue.get("state") or {}).get("name")
        creator = _name(issue.get("creator"))
        author = creator if kind == "issue.created" else None
        return self._event(
            kind, (issue.get("id"), issue.get("updatedAt"), kind), issue.get("updatedAt"),
            {"author": author or "unknown", "author_type": "team_member" if author else "unknown",
             "issue_id": issue.get("identifier"), "issue_assignee": _name(issue.get("assignee")),
             "issue_creator": creator, "state": state, "url": issue.get("url")},
            {"action": action, "issue_id": issue.get("identifier"), "issue_title": issue.get("title"),
             "state": state, "priority": issue.get("priority"),
             "project": (issue.get("project") or {}).get("name"), **change})

    def _event(self, kind: str, key: tuple[Any, ...], stamp: Any, provenance: dict[str, Any],
               payload: dict[str, Any]) -> dict[str, Any]:
        return {"id": natural_event_id(self.id, *(str(k) for k in key)),
                "timestamp": stamp if isinstance(stamp, str) and stamp else self.stamp(self.clock()),
                "source": self.id, "type": "resource.changed",
                "provenance": {"platform": "linear", "platform_event": kind, **provenance},
                "payload": payload, "trace_id": new_trace_id()}

    # ---------------------------------------------------------------- GraphQL
    def _nodes(self, query: str, field: str, filter_: dict[str, Any]) -> list[dict[str, Any]]:
        """Every node of a connection, page by page (at most :data:`~orgloop.connectors._pollbase.MAX_PAGES`)."""

        def fetch(after: str | None) -> tuple[list[dict[str, Any]], str | None]:
            data = self._graphql(query, {"filter": filter_, "first": self.config.page_size, "after": after})
            conn = data.get(field) if isinstance(data, dict) else None
            if not isinstance(conn, dict) or not isinstance(conn.get("nodes"), list):
                raise ApiError(f"GraphQL answer without {field}.nodes")
            info = conn.get("pageInfo") or {}
            more = info.get("hasNextPage") and info.get("endCursor")
            return [n for n in conn["nodes"] if isinstance(n, dict)], info["endCursor"] if more else None

        return [node for page in self.paged(fetch, field) for node in page]

    def _graphql(self, query: str, variables: dict[str, Any]) -> Any:
        self.requests += 1
        resp = self.client.request("POST", "", headers=self._headers, body={"query": query, "variables": variables})
        body = None
        try:
            body = resp.json()
        except ApiError:
            if resp.status == 200:
                raise
        errors = body.get("errors") if isinstance(body, dict) else None
        codes = {str((e.get("extensions") or {}).get("code", "")).upper()
                 for e in errors or [] if isinstance(e, dict)}
        if resp.status == 429 or "RATELIMITED" in codes:
            raise RateLimited(f"rate limited (HTTP {resp.status})", self._reset_wait(resp))
        if resp.status != 200 or errors:
            first = errors[0].get("message", "") if errors and isinstance(errors[0], dict) else ""
            raise ApiError(f"HTTP {resp.status}{': ' + str(first)[:200] if first else ''}", resp.status)
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ApiError("GraphQL answer without data", resp.status)
        return body["data"]

    def _reset_wait(self, resp: Response) -> float:
        reset = resp.header("x-ratelimit-requests-reset") or ""
        retry_after = resp.header("retry-after") or ""
        if retry_after.strip().isdigit():
            return float(retry_after)
        if reset.strip().isdigit():
            return self.wait_until(resp, int(reset) / 1000.0)
        return 60.0
