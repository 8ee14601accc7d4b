"""``webhook`` / ``http`` actor: posts each event to an HTTP endpoint.

Config: ``url``; ``method`` (POST, PUT or PATCH; default POST); ``headers``; ``auth`` (``{type: bearer,
token}`` or ``{type: basic, username, password}``; ``token_env`` / ``password_env`` name an environment
variable instead); ``body_template``; ``timeout`` (default 10s); ``sign_secret`` (HMAC-SHA256 of the body
sent as ``sha256=<hex>`` in ``signature_header``, default ``X-Hub-Signature-256``).

The body is JSON. Without a template it is ``{"event": …, "launch_prompt": …}``. A ``body_template`` (any
JSON shape) has ``{{ dot.path }}`` placeholders resolved against ``{event, launch_prompt}``: a string that is
exactly one placeholder takes the value itself (an object stays an object), placeholders inside longer
strings are replaced by the value's text (JSON for objects and lists, empty when missing). Nothing is
evaluated.

2xx is delivered; 408, 429 and 5xx are retried by the route's retry policy, never sooner than the
target's ``Retry-After``; other 4xx go to dead letters at once (see :mod:`orgloop.connectors.httpclient`).
Secrets (token, password, signing secret) are ``SecretStr``: masked in plan, status and logs.
"""
from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from orgloop.connectors.httpclient import HttpTarget
from orgloop.connectors.ingress import sign
from orgloop.plugins import PluginConfig
from orgloop.event import MISSING, get_path
from orgloop.units import parse_duration

__all__ = ["HttpActor", "HttpActorConfig", "HttpAuth", "render_template"]

_ONE = re.compile(r"^\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}$")
_ANY = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def render_template(template: Any, context: dict[str, Any]) -> Any:
    """Fill ``{{ dot.path }}`` placeholders in every string of ``template`` from ``context``."""
    if isinstance(template, str):
        whole = _ONE.match(template)
        if whole:
            value = get_path(context, whole.group(1))
            return None if value is MISSING else value

        def text(m: re.Match[str]) -> str:
            value = get_path(context, m.group(1))
            if value is MISSING or value is None:
                return ""
            return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)
        return _ANY.sub(text, template)
    if isinstance(template, dict):
        return {k: render_template(v, context) for k, v in template.items()}
    if isinstance(template, list):
        return [render_template(v, context) for v in template]
    return template


def _secret_or_env(value: SecretStr | None, env: str | None, what: str) -> str | None:
    if value is not None:
        return value.get_secret_value()
    if env:
        found = os.environ.get(env)
        if found is None:
            raise ValueError(f"{what}: environment variable {env} is not set")
        return found
    return None


class HttpAuth(PluginConfig):
    type: Literal["bearer", "basic"]
    token: SecretStr | None = None
    token_env: str | None = Field(None, description="read the bearer token from this environment variable")
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = Field(None, description="read the basic password from this environment variable")

    @model_validator(mode="after")
    def _complete(self) -> "HttpAuth":
        if self.type == "bearer" and self.token is None and not self.token_env:
            raise ValueError("bearer auth needs 'token' (e.g. ${API_TOKEN}) or 'token_env'")
        if self.type == "basic" and (not self.username or (self.password is None and not self.password_env)):
            raise ValueError("basic auth needs 'username' and 'password' (or 'password_env')")
        return self


class HttpActorConfig(PluginConfig):
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    auth: HttpAuth | None = None
    body_template: Any = None
    timeout: str | int | float = "10s"
    sign_secret: SecretStr | None = Field(None, description="HMAC-SHA256 signs the body when set")
    signature_header: str = "X-Hub-Signature-256"

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in ("POST", "PUT", "PATCH"):
            raise ValueError("method must be POST, PUT or PATCH")
        return v.upper()

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: str | int | float) -> str | int | float:
        if parse_duration(v) <= 0:
            raise ValueError("timeout must be positive")
        return v


class HttpActor:
    config_model = HttpActorConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        self.id = actor_id
        self.config = cfg = HttpActorConfig.model_validate(config)
        self.target = HttpTarget(cfg.url, timeout=parse_duration(cfg.timeout), name=f"http actor {actor_id}")
        self.headers = {"Content-Type": "application/json", "User-Agent": "orgloop", **cfg.headers}
        auth = cfg.auth
        if auth is not None and auth.type == "bearer":
            token = _secret_or_env(auth.token, auth.token_env, f"http actor {actor_id}")
            self.headers["Authorization"] = f"Bearer {token}"
        elif auth is not None:
            password = _secret_or_env(auth.password, auth.password_env, f"http actor {actor_id}")
            pair = base64.b64encode(f"{auth.username}:{password}".encode()).decode()
            self.headers["Authorization"] = f"Basic {pair}"
        self._sign_key = cfg.sign_secret.get_secret_value() if cfg.sign_secret else None

    def body(self, event: dict[str, Any], prompt: str | None) -> bytes:
        """The request body for ``event`` (see the module doc)."""
        context = {"event": event, "launch_prompt": prompt}
        value = context if self.config.body_template is None else render_template(self.config.body_template, context)
        return json.dumps(value, separators=(",", ":"), default=str).encode()

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        body = self.body(event, prompt)
        headers = self.headers
        if self._sign_key is not None:
            headers = {**headers, self.config.signature_header: sign(self._sign_key, body)}
        self.target.deliver(self.config.method, body, headers)

    def close(self) -> None:
        self.target.close()
