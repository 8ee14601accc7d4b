"""``command`` actor: runs a program for each event (argv list, never a shell).

Config: ``command`` (argv list; a string is split with shlex), ``timeout`` (duration, default 30s),
``cwd`` (relative to the project), ``env`` (extra variables). The event JSON goes to stdin; the prompt
is in a temporary file named by ``ORGLOOP_PROMPT_FILE`` (and ``ORGLOOP_EVENT_ID``, ``ORGLOOP_EVENT_TYPE``,
``ORGLOOP_SOURCE``, ``ORGLOOP_TRACE_ID`` are set).

The exit code alone decides: 0 is success; anything else, or the timeout, is a delivery failure that
retries and the breaker see. The timeout ends the program and everything it started, grandchildren that
called ``setsid`` included (:mod:`orgloop.connectors.process`). At shutdown, :meth:`CommandActor.interrupt`
ends runs still going after the drain deadline; their events stay unacked and are delivered once more
after the next start.

On success, stdout that is JSON events (an object, an array of objects, or one object per line, each with
an event ``type``) are the actor's follow-up events: they keep the trace of the event that caused them
(``source`` defaults to the actor id). Any other stdout (``42``, ``{"status": "ok"}``, plain text) is not
part of the protocol: it is logged at debug level and ignored.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from orgloop.connectors import DeliveryError, DeliveryInterrupted
from orgloop.connectors.process import Programs, RunInterrupted, run_program
from orgloop.event import EventError, adopt
from orgloop.plugins import Duration, PluginConfig

__all__ = ["CommandActor", "CommandConfig", "run_program", "json_values", "follow_ups_in"]

log = logging.getLogger("orgloop.connectors.command")


class CommandConfig(PluginConfig):
    """Settings of the ``command`` actor. ``env`` values are secrets (masked in plan, logs and status):
    that is where programs usually get their tokens."""

    command: list[str] = Field(min_length=1, description="argv list (a string is split with shlex)")
    timeout: Duration = Field(30.0, description="kill the process group after this long")
    cwd: str | None = Field(None, description="working directory, relative to the project")
    env: dict[str, SecretStr] = Field(default_factory=dict, description="extra environment variables")

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("env", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        """Numbers and booleans become their text, as the environment holds only strings."""
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, (int, float, bool)) else v for k, v in value.items()}
        return value


def json_values(text: str) -> list[Any]:
    """The values in ``text``: one JSON document (an array gives its items) or JSON lines.

    Empty text gives ``[]``; raises ValueError when the text is neither.
    """
    text = text.strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
        return parsed if isinstance(parsed, list) else [parsed]
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def follow_ups_in(cause: dict[str, Any], out: bytes, actor_id: str) -> list[dict[str, Any]]:
    """The follow-up events in a program's stdout; everything else in it is logged and ignored."""
    try:
        values = json_values(out.decode("utf-8", errors="replace"))
    except ValueError:
        values = []
        log.debug("command actor %s: stdout is not JSON; ignored", actor_id)
    events = []
    for value in values:
        if not (isinstance(value, dict) and "type" in value):
            log.debug("command actor %s: stdout value %.80r is not an event; ignored", actor_id, value)
            continue
        try:
            events.append(adopt(cause, value, source=actor_id))
        except EventError as exc:
            log.warning("command actor %s: ignored an invalid follow-up event: %s", actor_id, exc)
    return events


class CommandActor:
    config_model = CommandConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        cfg = CommandConfig.model_validate(config)
        self.id = actor_id
        self.argv = list(cfg.command)
        self.timeout = cfg.timeout
        self.cwd = (base_dir / cfg.cwd) if cfg.cwd else base_dir
        self.env = {k: v.get_secret_value() for k, v in cfg.env.items()}
        self._programs = Programs()

    def deliver(self, event: dict[str, Any], prompt: str | None, config: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the program for ``event``; returns the follow-up events it printed (possibly none)."""
        env = {**os.environ, **self.env, "ORGLOOP_EVENT_ID": str(event.get("id", "")),
               "ORGLOOP_TRACE_ID": str(event.get("trace_id", "")),
               "ORGLOOP_EVENT_TYPE": str(event.get("type", "")), "ORGLOOP_SOURCE": str(event.get("source", "")),
               "ORGLOOP_TARGET": self.id}
        prompt_file = None
        try:
            if prompt is not None:
                fd, prompt_file = tempfile.mkstemp(prefix="orgloop-prompt-", suffix=".md")
                with os.fdopen(fd, "w") as f:
                    f.write(prompt)
                env["ORGLOOP_PROMPT_FILE"] = prompt_file
            code, out, err = self._run(json.dumps(event, default=str).encode(), env)
            if code != 0:
                tail = err.decode(errors="replace").strip()[-500:]
                raise DeliveryError(f"command actor {self.id}: {self.argv[0]} exited with {code}"
                                    + (f": {tail}" if tail else ""))
            return follow_ups_in(event, out, self.id)
        finally:
            if prompt_file:
                os.unlink(prompt_file)

    def _run(self, stdin: bytes, env: dict[str, str]) -> tuple[int, bytes, bytes]:
        try:
            return self._programs.run(self.argv, stdin, timeout=self.timeout, cwd=self.cwd, env=env)
        except TimeoutError as exc:
            raise DeliveryError(f"command actor {self.id}: {self.argv[0]} {exc}") from None
        except RunInterrupted:
            raise DeliveryInterrupted(f"command actor {self.id}: {self.argv[0]} was ended at shutdown") from None
        except OSError as exc:
            raise DeliveryError(f"command actor {self.id}: cannot run {self.argv[0]}: {exc.strerror or exc}") from exc

    def interrupt(self) -> None:
        """End every run in progress (and refuse new ones): they raise DeliveryInterrupted, stay unacked."""
        self._programs.kill_all()

    def close(self) -> None:
        self.interrupt()
