#!/usr/bin/env python3
"""orgloop script transform: flag prompt-injection phrases in comment bodies before an agent reads them.

Script protocol (orgloop-format.md "Script transforms"): the event JSON arrives on stdin and the event
printed on stdout (exit 0) replaces it. Every text field named ``body``, ``text``, ``description`` or
``title`` anywhere in the payload (``payload.comment.body``, ``payload.review.body``...) is checked
against phrases that try to take over an agent ("ignore all previous instructions", "reveal your system
prompt", chat-template markers...), after lowercasing, removing zero-width characters and collapsing
whitespace (so simple obfuscation does not hide them). The event always passes; a hit adds

    payload.security = {"prompt_injection": true, "phrases": [...], "fields": ["payload.comment.body"]}

so a route can hold it back (``when.filter: {payload.security.prompt_injection: true}`` to a human, or a
``filter`` transform with ``exclude`` before the agent's route). Only the standard library.
"""
import json
import re
import sys

TEXT_KEYS = {"body", "text", "description", "title"}
PHRASES = {
    "ignore previous instructions": r"\b(ignore|disregard|forget|override)\b.{0,20}\b(all\s+)?(the\s+)?"
                                    r"(previous|prior|above|earlier|preceding|system)\s+(instructions|prompts?|rules)",
    "new instructions": r"\b(new|updated|real)\s+instructions\s*:",
    "role takeover": r"\byou\s+are\s+(now|no\s+longer)\b|\bfrom\s+now\s+on\s+you\b|\bact\s+as\s+(an?\s+)?"
                     r"(unrestricted|jailbroken|developer\s+mode)",
    "reveal the prompt": r"\b(reveal|print|show|repeat|output)\b.{0,20}\b(system\s+prompt|your\s+instructions|"
                         r"hidden\s+prompt)",
    "exfiltrate secrets": r"\b(send|post|upload|paste|print)\b.{0,30}\b(api[\s_-]?keys?|tokens?|secrets?|"
                          r"credentials|\.env|ssh\s+keys?)\b.{0,30}\b(to|into|at)\b",
    "hide from the user": r"\b(do\s+not|don'?t)\s+(tell|inform|mention\s+(this\s+)?to)\s+(the\s+)?(user|human|"
                          r"reviewer)",
    "chat template marker": r"<\|im_start\|>|<\|system\|>|\[/?inst\]|<<sys>>|^\s*system\s*:",
}
_COMPILED = {name: re.compile(rx, re.IGNORECASE | re.MULTILINE | re.DOTALL) for name, rx in PHRASES.items()}
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalise(text: str) -> str:
    text = text.translate(_ZERO_WIDTH).lower()
    return "\n".join(re.sub(r"[ \t\u00a0]+", " ", line) for line in text.splitlines())


def texts(value, path):
    """(dot.path, text) for every string under a text-like key."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}"
            if isinstance(inner, str) and key in TEXT_KEYS:
                yield where, inner
            else:
                yield from texts(inner, where)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from texts(inner, f"{path}.{i}")


def main() -> int:
    event = json.load(sys.stdin)
    phrases, fields = [], []
    for where, text in texts(event.get("payload") or {}, "payload"):
        hits = [name for name, rx in _COMPILED.items() if rx.search(normalise(text))]
        if hits:
            fields.append(where)
            phrases += [h for h in hits if h not in phrases]
    if phrases:
        payload = dict(event.get("payload") or {})
        payload["security"] = {"prompt_injection": True, "phrases": phrases, "fields": fields}
        event = {**event, "payload": payload}
    json.dump(event, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
