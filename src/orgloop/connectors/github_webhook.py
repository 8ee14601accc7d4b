"""``github-webhook`` source: GitHub webhook deliveries on the shared ingress listener.

Config: ``secret`` (the webhook's secret; ``X-Hub-Signature-256`` is then required and checked in constant
time, 401 otherwise), ``events`` (platform event names or delivery kinds to keep; others are answered 200
with no event), ``path``, ``max_body``. ``token``, ``repo_owner``, ``repo_name``, ``buffer_dir`` and
``max_buffer_size`` of OrgLoop projects are accepted and unused.

``X-GitHub-Event`` is required (400 without it). ``X-GitHub-Delivery`` is the natural key of the event id,
so a redelivered webhook gets the same id and ``dedup`` recognises it. JSON and form-encoded
(``payload=``) deliveries are both accepted. The mapping is :mod:`orgloop.connectors.github_events`; the
answer is ``{"ok": true, "events_created": N, "event_ids": [...]}``.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from orgloop.connectors.github_events import normalize
from orgloop.connectors.ingress import IngressError, PushConfig, PushRequest, PushSourceBase
from orgloop.event import natural_event_id, new_event

__all__ = ["GithubWebhookSource", "GithubWebhookConfig"]


class GithubWebhookConfig(PushConfig):
    events: list[str] | None = Field(None, description="keep only these (e.g. pull_request.opened, issue_comment)")
    token: SecretStr | None = Field(None, description="accepted for OrgLoop projects; unused")
    repo_owner: str | None = None
    repo_name: str | None = None


class GithubWebhookSource(PushSourceBase):
    config_model = GithubWebhookConfig
    config: GithubWebhookConfig
    signature_headers = ("X-Hub-Signature-256",)

    def events(self, request: PushRequest) -> list[dict[str, Any]]:
        kind = request.header("X-GitHub-Event")
        if not kind:
            raise IngressError(400, "missing X-GitHub-Event header")
        body = request.json_object()
        name, provenance, payload = normalize(kind, body)
        wanted = self.config.events
        if wanted and name not in wanted and kind not in wanted:
            return []
        event = new_event(self.id, "resource.changed", payload, provenance=provenance)
        delivery = request.header("X-GitHub-Delivery")
        if delivery:
            provenance["delivery_id"] = delivery
            event["id"] = natural_event_id(self.id, delivery)
        return [event]
