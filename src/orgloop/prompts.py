"""``{{dot.path}}`` placeholders: how prompt files and ``then.config`` strings are filled from an event.

This is the only template syntax there is (decisions.md "Prompts"): ``{{ payload.pr.number }}`` (spaces
inside the braces allowed; a path is letters, digits, ``_``, ``-`` and dots) is replaced by the value at
that path of the event; a missing or null value becomes empty text, a mapping or list its compact JSON,
anything else its text. Everything else in a template is left exactly as written, so OrgLoop prompt files
load unchanged. Nothing is ever evaluated: a placeholder only reads a value.

Prompt files (``with.prompt_file``) have their YAML front matter stripped when they are loaded
(:func:`orgloop.config.loader.strip_front_matter`) and are rendered per event by the delivery lane and by
``orgloop test``.
"""
from __future__ import annotations

import json
import re
from typing import Any

from orgloop.event import MISSING, get_path

__all__ = ["PLACEHOLDER", "render", "render_config", "has_placeholders"]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")


def _text(value: Any) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def render(template: str, event: dict[str, Any]) -> str:
    """``template`` with every placeholder filled from ``event``."""
    if "{{" not in template:
        return template
    return PLACEHOLDER.sub(lambda m: _text(get_path(event, m.group(1))), template)


def render_config(config: Any, event: dict[str, Any]) -> Any:
    """:func:`render` applied to every string in ``config`` (mappings and lists are walked; a copy)."""
    if isinstance(config, str):
        return render(config, event)
    if isinstance(config, dict):
        return {k: render_config(v, event) for k, v in config.items()}
    if isinstance(config, list):
        return [render_config(v, event) for v in config]
    return config


def has_placeholders(config: Any) -> bool:
    """Whether any string in ``config`` may hold a placeholder (then it must be rendered per event)."""
    if isinstance(config, str):
        return "{{" in config
    if isinstance(config, dict):
        return any(has_placeholders(v) for v in config.values())
    if isinstance(config, list):
        return any(has_placeholders(v) for v in config)
    return False
