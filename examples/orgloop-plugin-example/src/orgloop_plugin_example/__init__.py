"""An example third-party orgloop plugin package (see README.md).

* ``stamp`` (transform): writes ``value`` at the dot-path ``field`` of each event's payload.
* ``memo`` (actor): appends one line per delivered event to ``path``: ``<prefix> <event id> <digest>``,
  where the digest is an HMAC-SHA256 of the event id under ``signing_key`` (a secret: orgloop masks it
  in ``plan``, ``inspect`` and ``status``) or ``-`` without one.

Each class declares its settings as an ``orgloop.plugins.PluginConfig`` model, so ``orgloop validate``
checks them at file:line:col and ``orgloop schema`` documents them.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr

from orgloop.connectors import DeliveryError
from orgloop.plugins import PluginConfig
from orgloop.transforms import TransformContext

__all__ = ["StampTransform", "StampConfig", "MemoActor", "MemoConfig"]


class StampConfig(PluginConfig):
    field: str = Field("stamped_by", description="key in the payload to write")
    value: str = Field(description="what to write there")


class StampTransform:
    config_model = StampConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path, state_dir: Path | None) -> None:
        self.config = StampConfig.model_validate(config)

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        return [{**event, "payload": {**event.get("payload", {}), self.config.field: self.config.value}}]

    def close(self) -> None:
        pass


class MemoConfig(PluginConfig):
    path: str = Field(description="file to append to, relative to the project")
    prefix: str = "memo"
    signing_key: SecretStr | None = Field(None, description="HMAC key for each line's digest")


class MemoActor:
    config_model = MemoConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        cfg = MemoConfig.model_validate(config)
        self.path = (base_dir / cfg.path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.prefix = cfg.prefix
        self.key = cfg.signing_key.get_secret_value().encode() if cfg.signing_key else None
        self.lock = threading.Lock()

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> None:
        digest = hmac.new(self.key, event["id"].encode(), hashlib.sha256).hexdigest() if self.key else "-"
        stamp = event.get("payload", {}).get("stamped_by", "")
        try:
            with self.lock, open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{self.prefix} {event['id']} {digest} {stamp}\n")
        except OSError as exc:
            raise DeliveryError(f"memo: cannot write {self.path}: {exc.strerror}") from exc

    def close(self) -> None:
        pass
