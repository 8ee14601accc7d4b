"""GitHub objects to orgloop events: the one mapping shared by the ``github-webhook`` source (and usable by
the ``github`` poller, which sees the same objects through the REST API).

:func:`normalize` takes a delivery kind (``X-GitHub-Event``: ``pull_request``, ``pull_request_review``, …)
and a webhook-shaped body (``action``, ``pull_request``, ``review``, ``comment``, ``issue``, ``check_run``,
``repository``, ``sender``) and returns ``(platform_event, provenance, payload)``. Known kinds get the
poller's event names and a compact payload; any other kind keeps its whole body as payload and is named
``<kind>.<action>`` (or ``<kind>``), so no delivery is refused.

=============================  =====================================================
delivery                       ``provenance.platform_event``
=============================  =====================================================
pull_request_review            ``pull_request.review_submitted`` (edited/dismissed: ``pull_request_review.<action>``)
pull_request_review_comment    ``pull_request_review_comment``
issue_comment                  ``issue_comment``
pull_request + opened          ``pull_request.opened`` (closed: ``.closed`` or ``.merged``; ``.ready_for_review``)
check_run + completed          ``check_run.completed``
check_suite + completed        ``check_suite.completed``
workflow_run + completed       ``workflow_run.completed``
=============================  =====================================================
"""
from __future__ import annotations

from typing import Any

__all__ = ["author_type", "normalize"]


_TEAM = ("OWNER", "MEMBER", "COLLABORATOR")


def author_type(user: dict[str, Any] | None, association: str | None = None) -> str:
    """``bot`` for GitHub Apps and ``[bot]`` logins; else by ``author_association`` (as the poller decides):
    ``team_member`` for OWNER/MEMBER/COLLABORATOR, ``external`` for others; ``unknown`` without either."""
    if not user:
        return "unknown"
    login = str(user.get("login") or "")
    if user.get("type") == "Bot" or login.endswith("[bot]"):
        return "bot"
    if association is None:
        return "unknown"
    return "team_member" if association in _TEAM else "external"


def _obj(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    return value if isinstance(value, dict) else {}


def _login(user: dict[str, Any] | None) -> str:
    return str((user or {}).get("login") or "unknown")


def normalize(kind: str, body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(platform_event, provenance, payload)`` for one GitHub delivery (see the module table)."""
    action = body.get("action") if isinstance(body.get("action"), str) else None
    repo = _obj(body, "repository").get("full_name", "")
    pr = _obj(body, "pull_request")
    prov: dict[str, Any] = {"platform": "github", "repo": repo}
    actor: dict[str, Any] | None = _obj(body, "sender") or None
    association: str | None = None
    payload: dict[str, Any]
    event: str | None = None

    if kind == "pull_request_review" and pr and action in (None, "submitted"):
        review = _obj(body, "review")
        actor, association = review.get("user") or actor, review.get("author_association")
        event = "pull_request.review_submitted"
        prov.update(pr_number=pr.get("number"), pr_author=_login(pr.get("user")), url=review.get("html_url", ""),
                    review_id=review.get("id"), review_state=review.get("state"))
        payload = {"action": "review_submitted", "review_id": review.get("id"), "review_state": review.get("state"),
                   "review_body": review.get("body"), "pr_title": pr.get("title"), "pr_number": pr.get("number")}
    elif kind == "pull_request_review_comment" and pr:
        comment = _obj(body, "comment")
        actor, association = comment.get("user") or actor, comment.get("author_association")
        event = "pull_request_review_comment"
        prov.update(pr_number=pr.get("number"), pr_author=_login(pr.get("user")), url=comment.get("html_url", ""))
        payload = {"action": "review_comment", "comment_body": comment.get("body"), "pr_title": pr.get("title"),
                   "pr_number": pr.get("number"), "diff_hunk": comment.get("diff_hunk"), "path": comment.get("path")}
    elif kind == "issue_comment" and body.get("issue"):
        comment, issue = _obj(body, "comment"), _obj(body, "issue")
        actor, association = comment.get("user") or actor, comment.get("author_association")
        event = "issue_comment"
        prov.update(pr_number=issue.get("number"), pr_author=_login(issue.get("user")),
                    url=comment.get("html_url", ""))
        payload = {"action": "issue_comment", "comment_body": comment.get("body"), "issue_title": issue.get("title"),
                   "issue_number": issue.get("number"), "is_pull_request": bool(issue.get("pull_request"))}
    elif kind == "pull_request" and pr and action in ("opened", "closed", "ready_for_review"):
        merged = bool(pr.get("merged"))
        name = "merged" if action == "closed" and merged else action
        actor, association = pr.get("user") or actor, pr.get("author_association")
        event = f"pull_request.{name}"
        prov.update(pr_number=pr.get("number"), pr_author=_login(pr.get("user")), url=pr.get("html_url", ""))
        payload = {"action": name, "pr_title": pr.get("title"), "pr_number": pr.get("number"),
                   "draft": bool(pr.get("draft")), "head_ref": _obj(pr, "head").get("ref"),
                   "base_ref": _obj(pr, "base").get("ref"), "merged": merged}
        if merged:
            payload["merged_by"] = _login(pr.get("merged_by"))
    elif kind in ("check_run", "check_suite", "workflow_run") and action == "completed" and body.get(kind):
        run = _obj(body, kind)
        event = f"{kind}.completed"
        app = _obj(run, "app")
        if kind == "workflow_run":
            actor = run.get("actor") or actor
        else:
            actor = {"login": app.get("slug") or "unknown", "type": "Bot"}
        prs = run.get("pull_requests") or []
        prov.update(url=run.get("html_url") or run.get("url", ""))
        payload = {"action": f"{kind}_completed", "name": run.get("name") or app.get("name"),
                   "conclusion": run.get("conclusion"), "status": run.get("status"),
                   "head_branch": run.get("head_branch") or _obj(run, "check_suite").get("head_branch"),
                   "head_sha": run.get("head_sha"),
                   "pr_numbers": [p.get("number") for p in prs if isinstance(p, dict)]}
    else:
        event = f"{kind}.{action}" if action else kind
        payload = body
    prov["platform_event"] = event
    prov["author"] = _login(actor)
    prov["author_type"] = author_type(actor, association)
    return event, prov, payload
