"""``command`` actor: runs a program for each event (argv list, never a shell).

Config: ``command`` (argv list; a string is split with shlex), ``timeout`` (duration, default 30s),
``cwd`` (relative to the project), ``env`` (extra variables). The event JSON goes to stdin; the prompt
is in a temporary file named by ``ORGLOOP_PROMPT_FILE`` (and ``ORGLOOP_EVENT_ID``, ``ORGLOOP_EVENT_TYPE``,
``ORGLOOP_SOURCE``, ``ORGLOOP_TRACE_ID`` are set). Exit 0 is success; anything else, or the timeout (which
kills the whole process group), is a delivery failure that retries and the breaker see.

On success, if stdout is JSON (an object, an array of objects, or one object per line), those objects are
the actor's follow-up events: they keep the trace of the event that caused them (``source`` defaults to the
actor id). Any other stdout is not part of the protocol and is ignored.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from orgloop.connectors import DeliveryError
from orgloop.plugins import Duration, PluginConfig

__all__ = ["CommandActor", "CommandConfig", "run_program", "json_values"]


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


def run_program(argv: list[str], stdin: bytes, *, timeout: float, cwd: Path | None,
                env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run ``argv`` in its own process group; on timeout kill the group. Returns (code, stdout, stderr).

    Raises TimeoutError on timeout and OSError if it cannot start.
    """
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=cwd, env=env, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise TimeoutError(f"{argv[0]} did not finish within {timeout:g}s (process group killed)") from None
    return proc.returncode, out, err


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


class CommandActor:
    config_model = CommandConfig

    def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Path) -> None:
        cfg = CommandConfig.model_validate(config)
        self.id = actor_id
        self.argv = list(cfg.command)
        self.timeout = cfg.timeout
        self.cwd = (base_dir / cfg.cwd) if cfg.cwd else base_dir
        self.env = {k: v.get_secret_value() for k, v in cfg.env.items()}

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
            try:
                code, out, err = run_program(self.argv, json.dumps(event, default=str).encode(),
                                              timeout=self.timeout, cwd=self.cwd, env=env)
            except (TimeoutError, OSError) as exc:
                raise DeliveryError(f"command actor {self.id}: {exc}") from exc
            if code != 0:
                tail = err.decode(errors="replace").strip()[-500:]
                raise DeliveryError(f"command actor {self.id}: {self.argv[0]} exited with {code}"
                                    + (f": {tail}" if tail else ""))
            try:
                return json_values(out.decode(errors="replace"))
            except ValueError:
                return []                   # ordinary output, not follow-up events
        finally:
            if prompt_file:
                os.unlink(prompt_file)

    def close(self) -> None:
        pass
