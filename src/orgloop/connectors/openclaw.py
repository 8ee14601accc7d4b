"""``openclaw`` actor: wakes an OpenClaw agent for each event (``POST <base_url>/hooks/agent``).

Actor config: ``base_url`` (default ``http://127.0.0.1:18789``), ``auth_token_env`` (after ``${VAR}``
substitution it holds the token itself; a bare variable name such as ``OPENCLAW_TOKEN`` is read from the
environment), ``agent_id``, ``default_channel``, ``default_to``, ``timeout`` (default 30s).

Route config (``then.config``): ``session_key`` (default ``orgloop:<source>:<type>``), ``wake_mode``
(default ``now``), ``deliver`` (default false), ``thread_id``, ``channel``, ``to``, ``model``, ``thinking``,
``timeout_seconds``. ``{{dot.path}}`` placeholders in them are filled from the event by the delivery lane
(a missing value gives an empty string). A callback session key in
``payload.meta.openclaw_callback_session_key`` (or ``payload.session.meta``) is used first, with its
``openclaw_callback_agent_id``; if the gateway refuses it, the route's session key is tried.

The body is ``{message, sessionKey, agentId, wakeMode, deliver, channel, to, threadId?, model?, thinking?,
timeoutSeconds?}``; ``message`` is the header line ``[<source>] <type> (<platform_event>) by <author>``, then
``Context:`` (the other provenance fields), ``Payload:`` (one ``key: value`` line each) and
``Instructions:`` (the route's launch prompt). 2xx is delivered, 429/5xx retried, other 4xx dead-lettered.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from orgloop.connectors import DeliveryError
from orgloop.connectors.httpclient import HttpTarget
from orgloop.plugins import PluginConfig
from orgloop.units import parse_duration

__all__ = ["OpenClawActor", "OpenClawConfig", "build_message"]

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_SKIP = ("platform", "platform_event", "author", "author_type")


class OpenClawConfig(PluginConfig):
    base_url: str = "http://127.0.0.1:18789"
    auth_token_env: SecretStr | None = Field(None, description="the gateway token (or the name of its variable)")
    agent_id: str | None = None
    default_channel: str | None = None
    default_to: str | None = None
    timeout: str | int | float = "30s"


def build_message(event: dict[str, Any], prompt: str | None) -> str:
    """The ``message`` text the agent reads (see the module doc)."""
    prov = event.get("provenance") or {}
    header = f"[{event.get('source')}] {event.get('type')}"
    if prov.get("platform_event"):
        header += f" ({prov['platform_event']})"
    if prov.get("author"):
        header += f" by {prov['author']}"
    sections = [header]
    context = [f"  {k}: {v}" for k, v in prov.items() if k not in _SKIP and v is not None]
    if context:
        sections.append("Context:\n" + "\n".join(context))
    payload = event.get("payload") or {}
    if payload:
        sections.append("Payload:\n" + "\n".join(
            f"  {k}: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in payload.items()))
    if prompt:
        sections.append("Instructions:\n" + prompt)
    return "\n\n".join(sections)


def _callback(event: dict[str, Any], field: str) -> str | None:
    payload = event.get("payload") or {}
    for meta in (payload.get("meta"), (payload.get("session") or {}).get("meta")
                 if isinstance(payload.get("session"), dict) else None):
        if isinstance(meta, dict) and isinstance(meta.get(field), str) and meta[field]:
            return meta[field]
    return None


class OpenClawActor:
    config_model = OpenClawConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        self.id = actor_id
        self.config = cfg = OpenClawConfig.model_validate(config)
        self.target = HttpTarget(cfg.base_url.rstrip("/") + "/hooks/agent", timeout=parse_duration(cfg.timeout),
                                 name=f"openclaw actor {actor_id}")
        self.headers = {"Content-Type": "application/json", "User-Agent": "orgloop"}
        token = cfg.auth_token_env.get_secret_value() if cfg.auth_token_env else ""
        if _ENV_NAME.match(token) and token in os.environ:
            token = os.environ[token]
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request_body(self, event: dict[str, Any], prompt: str | None, route: dict[str, Any],
                     session_key: str, agent_id: str | None) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {
            "message": build_message(event, prompt), "sessionKey": session_key, "agentId": agent_id,
            "wakeMode": route.get("wake_mode") or "now", "deliver": bool(route.get("deliver", False)),
            "channel": route.get("channel") or cfg.default_channel, "to": route.get("to") or cfg.default_to}
        for key, wire in (("thread_id", "threadId"), ("model", "model"), ("thinking", "thinking"),
                          ("timeout_seconds", "timeoutSeconds")):
            if route.get(key) not in (None, ""):
                body[wire] = route[key]
        return body

    def _post(self, body: dict[str, Any]) -> None:
        self.target.deliver("POST", json.dumps(body, default=str).encode(), self.headers)

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        session_key = config.get("session_key") or f"orgloop:{event.get('source')}:{event.get('type')}"
        callback = _callback(event, "openclaw_callback_session_key")
        if callback:
            try:
                self._post(self.request_body(event, prompt, config, callback,
                                             _callback(event, "openclaw_callback_agent_id") or self.config.agent_id))
                return
            except DeliveryError:
                pass                        # the callback session is gone: wake the route's session instead
        self._post(self.request_body(event, prompt, config, session_key, self.config.agent_id))

    def close(self) -> None:
        self.target.close()
