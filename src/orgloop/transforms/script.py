"""``script`` transform: an external program decides (the OrgLoop script-transform protocol).

The program gets the event JSON on stdin and ``ORGLOOP_SOURCE``, ``ORGLOOP_TARGET``,
``ORGLOOP_EVENT_TYPE``, ``ORGLOOP_EVENT_ID``, ``ORGLOOP_ROUTE`` in its environment; it runs without a
shell, in its own process group, killed as a group after ``timeout_ms`` (default 30000).

* exit 0 with a JSON object on stdout: it replaces the event; a JSON array, or one object per line,
  splits it into several events (each validated as an event);
* exit 0 with empty stdout, exit 1, or exit 78 (some scaffolds use 78 for "drop"): the event is dropped;
* exit ≥ 2 (other than 78), a timeout, a spawn failure or invalid output: :class:`TransformError`,
  handled by the route's ``on_error`` policy.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from orgloop.connectors.command import json_values
from orgloop.connectors.process import Programs, RunInterrupted
from orgloop.event import EventError, validate_event
from orgloop.plugins import PluginConfig
from orgloop.transforms import TransformContext, TransformError

__all__ = ["ScriptTransform", "ScriptConfig", "DROP_EXIT_CODES"]


class ScriptConfig(PluginConfig):
    """Settings of a script transform's ``config`` (``script`` and ``timeout_ms`` come from the transform
    definition itself)."""

    script: str | None = Field(None, description="the executable, relative to the transform file")
    args: list[str] = Field(default_factory=list, description="extra arguments after the script path")
    timeout_ms: int = Field(30_000, ge=1)

    @field_validator("args", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return [str(a) if isinstance(a, (int, float)) else a for a in value] if isinstance(value, list) else value

DROP_EXIT_CODES = (1, 78)


class ScriptTransform:
    #: it runs a program and may take up to its timeout: the router runs its routes off the dispatch thread
    blocking = True
    config_model = ScriptConfig

    def __init__(self, name: str, config: dict[str, Any], *, base_dir: Path, state_dir: Path | None = None) -> None:
        cfg = ScriptConfig.model_validate(config)
        if not cfg.script:
            raise ValueError(f"script transform {name!r}: config.script (a path) is required")
        self.name = name
        self.path = (Path(base_dir) / cfg.script).resolve()
        self.args = list(cfg.args)
        self.timeout = cfg.timeout_ms / 1000.0
        self._programs = Programs()

    def apply(self, event: dict[str, Any], ctx: TransformContext) -> list[dict[str, Any]]:
        env = {**os.environ, "ORGLOOP_SOURCE": str(event.get("source", "")), "ORGLOOP_TARGET": ctx.target,
               "ORGLOOP_EVENT_TYPE": str(event.get("type", "")), "ORGLOOP_EVENT_ID": str(event.get("id", "")),
               "ORGLOOP_ROUTE": ctx.route}
        try:
            code, out, err = self._programs.run([str(self.path), *self.args], json.dumps(event, default=str).encode(),
                                                timeout=self.timeout, cwd=self.path.parent, env=env)
        except RunInterrupted:
            raise TransformError(f"script {self.name} was ended at shutdown") from None
        except TimeoutError as exc:
            raise TransformError(f"script {self.name}: {exc}") from None
        except OSError as exc:
            raise TransformError(f"script {self.name}: cannot run {self.path}: {exc.strerror or exc}") from None
        if code in DROP_EXIT_CODES:
            return []
        if code != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            raise TransformError(f"script {self.name} exited with {code}" + (f": {tail}" if tail else ""))
        try:
            items = json_values(out.decode(errors="replace"))
        except ValueError:
            raise TransformError(f"script {self.name} printed output that is not JSON") from None
        try:
            return [validate_event(item) for item in items]
        except EventError as exc:
            raise TransformError(f"script {self.name} returned an invalid event: {exc}") from None

    def close(self) -> None:
        """End the scripts still running (at shutdown): no process outlives the runtime."""
        self._programs.kill_all()
