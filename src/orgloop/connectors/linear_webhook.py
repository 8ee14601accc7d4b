"""``linear-webhook`` source: Linear webhook deliveries on the shared ingress listener.

Config: ``secret`` (the webhook's signing secret; ``Linear-Signature`` then carries the hex HMAC-SHA256
of the raw body, checked in constant time, 401 otherwise), ``team`` (a team key such as ``ENG``: other
teams' deliveries are answered 200 with no event), ``events`` (platform event names to keep), ``path``,
``max_body``.

A delivery ``{action, type, data, url, actor, updatedFrom}`` becomes one ``resource.changed`` event with
``provenance.platform: linear`` and ``platform_event`` named as the ``linear`` poller names them:
``<type>.<created|updated|removed>`` (``issue.created``, ``comment.created``), and for an issue update
whose ``updatedFrom`` holds ``stateId``, ``assigneeId``, ``priority`` or ``labelIds`` (first match):
``issue.state_changed``, ``issue.assignee_changed``, ``issue.priority_changed``, ``issue.labels_changed``. The event id's natural key is the ``Linear-Delivery`` header, else (data id,
``updatedAt``).
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from orgloop.connectors.ingress import PushConfig, PushRequest, PushSourceBase
from orgloop.event import natural_event_id, new_event

__all__ = ["LinearWebhookSource", "LinearWebhookConfig", "linear_event"]


class LinearWebhookConfig(PushConfig):
    team: str | None = Field(None, description="only this team's deliveries (team key, e.g. ENG)")
    project: str | None = Field(None, description="only this project's deliveries (project name or id)")
    events: list[str] | None = Field(None, description="keep only these platform events (issue.created, …)")


def linear_event(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(platform_event, provenance, payload)`` for one Linear webhook body."""
    kind = str(body.get("type") or "unknown").lower()
    action = str(body.get("action") or "unknown").lower()
    action = _PAST.get(action, action)
    data = _dict(body.get("data"))
    updated_from = _dict(body.get("updatedFrom"))
    change = next((name for field, name in _CHANGES if field in updated_from), None) \
        if kind == "issue" and action == "updated" else None
    name = f"issue.{change}" if change else f"{kind}.{action}"
    actor = _dict(body.get("actor"))
    author_type = "unknown" if not actor else "team_member" if actor.get("type", "user") == "user" else "bot"
    issue = _dict(data.get("issue")) or (data if kind == "issue" else {})
    provenance = {"platform": "linear", "platform_event": name, "author": actor.get("name") or "unknown",
                  "author_type": author_type, "url": body.get("url") or data.get("url", "")}
    payload = {"action": action, "type": kind, "identifier": issue.get("identifier"), "title": issue.get("title"),
               "state": _dict(data.get("state")).get("name"),
               "team": _team_key(data), "body": data.get("body") if kind == "comment" else data.get("description"),
               "data": data, "updated_from": updated_from}
    return name, provenance, payload


# Linear's actions, named as the ``linear`` poller names its events (issue.created, comment.created, …).
_PAST = {"create": "created", "update": "updated", "remove": "removed"}
_CHANGES = (("stateId", "state_changed"), ("assigneeId", "assignee_changed"), ("priority", "priority_changed"),
            ("labelIds", "labels_changed"))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _team_key(data: dict[str, Any]) -> str | None:
    team = _dict(data.get("team")) or _dict(_dict(data.get("issue")).get("team"))
    return team.get("key")


class LinearWebhookSource(PushSourceBase):
    config_model = LinearWebhookConfig
    config: LinearWebhookConfig
    signature_headers = ("Linear-Signature",)
    signature_prefix = ""

    def events(self, request: PushRequest) -> list[dict[str, Any]]:
        body = request.json_object()
        name, provenance, payload = linear_event(body)
        cfg = self.config
        if cfg.team and payload["team"] not in (None, cfg.team):
            return []
        project = _dict(payload["data"].get("project"))
        if cfg.project and project and cfg.project not in (project.get("name"), project.get("id")):
            return []
        if cfg.events and name not in cfg.events:
            return []
        event = new_event(self.id, "resource.changed", payload, provenance=provenance)
        delivery = request.header("Linear-Delivery")
        data = payload["data"]
        if delivery:
            event["id"] = natural_event_id(self.id, delivery)
        elif data.get("id") and data.get("updatedAt"):
            event["id"] = natural_event_id(self.id, str(data["id"]), str(data["updatedAt"]))
        return [event]
