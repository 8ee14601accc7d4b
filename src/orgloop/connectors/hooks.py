"""``claude-code`` / ``coding-agent`` source (aliases ``codex`` and ``opencode``): coding-agent lifecycle hooks.

The agent's hook configuration runs ``orgloop hook claude-code-stop`` (see :mod:`orgloop.cli.hook`), which
posts the hook's JSON to ``/webhook/<source-id>`` on the shared ingress listener. Each post is one event:

- a session start (``hook_event_name`` ``SessionStart``, or ``phase``/``event`` ``start``/``started``) is
  ``resource.changed`` with ``platform_event: session.started``;
- a stop (``Stop``, ``SubagentStop``, ``SessionEnd``, ``stop``/``exited``, or no phase at all, which is what
  the stop bridge sends) is ``actor.stopped`` with ``platform_event: session.exited``: the agent finished,
  route what comes next;
- any other hook (``Notification``, ``UserPromptSubmit``, …) is ``resource.changed`` with
  ``session.<hook_name_in_snake_case>``.

Config: ``harness`` (``claude-code``, ``codex``, ``opencode``, …; default: the source id when it names one,
else ``claude-code``), ``platform`` (overrides ``provenance.platform``, default the harness), ``secret``,
``path``, ``max_body``. The payload carries ``session_id``, ``working_directory`` (``cwd`` is accepted),
``duration_seconds``, ``exit_status``, ``summary``, ``transcript_path``, and any other fields the hook sent.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field

from orgloop.connectors.ingress import PushConfig, PushRequest, PushSourceBase
from orgloop.event import new_event

__all__ = ["CodingAgentSource", "CodingAgentConfig", "HARNESSES", "session_phase"]

HARNESSES = ("claude-code", "codex", "opencode", "pi", "pi-rust")
_STARTS = {"sessionstart", "start", "started", "session.started", "session_start"}
_STOPS = {"stop", "subagentstop", "sessionend", "stopped", "exited", "exit", "session.exited", "session_end"}


class CodingAgentConfig(PushConfig):
    harness: str | None = Field(None, description="claude-code | codex | opencode | pi | pi-rust")
    platform: str | None = Field(None, description="provenance.platform (default: the harness)")


def session_phase(body: dict[str, Any]) -> tuple[str, str]:
    """``(event type, platform_event)`` of one hook body."""
    raw = next((body[k] for k in ("hook_event_name", "phase", "event") if isinstance(body.get(k), str)), "")
    key = raw.strip().lower()
    if key in _STARTS:
        return "resource.changed", "session.started"
    if not key or key in _STOPS:
        return "actor.stopped", "session.exited"
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw.strip()).lower().replace("-", "_")
    return "resource.changed", "session." + snake.removeprefix("session.")


class CodingAgentSource(PushSourceBase):
    config_model = CodingAgentConfig
    signed_by_sender = False          # the `orgloop hook` bridge posts unsigned, on loopback
    config: CodingAgentConfig

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        super().__init__(source_id, config, base_dir=base_dir)
        self.harness = self.config.harness or (source_id if source_id in HARNESSES else "claude-code")
        self.platform = self.config.platform or self.harness

    def events(self, request: PushRequest) -> list[dict[str, Any]]:
        body = request.json_object()
        type_, phase = session_phase(body)
        workdir = body.get("working_directory") or body.get("cwd") or ""
        payload = {k: v for k, v in body.items() if k != "cwd"}
        payload.update(session_id=body.get("session_id"), working_directory=workdir,
                       duration_seconds=body.get("duration_seconds"), exit_status=body.get("exit_status"),
                       summary=body.get("summary") or "", transcript_path=body.get("transcript_path") or "")
        provenance = {"platform": self.platform, "platform_event": phase, "author": self.harness,
                      "author_type": "bot", "session_id": body.get("session_id"), "working_directory": workdir}
        return [new_event(self.id, type_, payload, provenance=provenance)]
