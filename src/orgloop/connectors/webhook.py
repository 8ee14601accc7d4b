"""``webhook`` source: any system that can POST JSON.

Mounted on the shared ingress listener at ``/webhook/<source-id>`` (and ``path``). Config:
``secret`` (HMAC-SHA256 of the raw body, ``sha256=<hex>`` in ``X-Hub-Signature-256`` or ``X-Signature``),
``event_type_field`` (dot-path into the body giving ``provenance.platform_event``, default ``type``),
``path``, ``max_body`` (default 5MB). The body (a JSON object) becomes the payload of one
``resource.changed`` event with ``provenance.platform: webhook``; the answer is
``{"ok": true, "event_id": ...}``. A sender that sets ``Idempotency-Key`` gets a deterministic event id
(:func:`orgloop.event.natural_event_id`), so a retried post is recognised by ``dedup``.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from orgloop.connectors.ingress import PushConfig, PushRequest, PushSourceBase
from orgloop.event import natural_event_id, new_event
from orgloop.event import MISSING, get_path

__all__ = ["WebhookSource", "WebhookSourceConfig"]


class WebhookSourceConfig(PushConfig):
    event_type_field: str = Field("type", description="dot-path into the body naming the platform event")


class WebhookSource(PushSourceBase):
    config_model = WebhookSourceConfig
    config: WebhookSourceConfig

    def events(self, request: PushRequest) -> list[dict[str, Any]]:
        body = request.json_object()
        provenance: dict[str, Any] = {"platform": "webhook"}
        kind = get_path(body, self.config.event_type_field)
        if kind is not MISSING and kind is not None and not isinstance(kind, (dict, list)):
            provenance["platform_event"] = str(kind)
        event = new_event(self.id, "resource.changed", body, provenance=provenance)
        key = request.header("Idempotency-Key")
        if key:
            event["id"] = natural_event_id(self.id, key)
        return [event]
