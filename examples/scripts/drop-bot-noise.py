#!/usr/bin/env python3
"""orgloop script transform: drop events caused by bots (dependabot, renovate, CI accounts...).

Script protocol (orgloop-format.md "Script transforms"): the event JSON arrives on stdin; printing it
back (exit 0) keeps it, exit 1 drops it. An event is bot noise when its ``provenance.author_type`` is
``bot``, when the author's login ends in ``[bot]`` (GitHub Apps), or when the author is one of the logins
given as arguments (``args: [ci-runner, release-robot]`` in the transform's config) or listed, comma
separated, in ``ORGLOOP_BOT_AUTHORS``. Only the standard library; never a shell.
"""
import json
import os
import sys

KNOWN_BOTS = {"dependabot", "renovate", "github-actions", "codecov", "snyk-bot", "mergify", "linear"}


def author_of(event: dict) -> str:
    provenance = event.get("provenance") or {}
    author = provenance.get("author") or ""
    return author.strip().lower() if isinstance(author, str) else ""


def is_bot(event: dict, extra: set[str]) -> bool:
    provenance = event.get("provenance") or {}
    if provenance.get("author_type") == "bot":
        return True
    author = author_of(event)
    return author.endswith("[bot]") or author in KNOWN_BOTS or author in extra


def main() -> int:
    event = json.load(sys.stdin)
    extra = {a.strip().lower() for a in os.environ.get("ORGLOOP_BOT_AUTHORS", "").split(",") if a.strip()}
    extra |= {a.strip().lower() for a in sys.argv[1:]}
    if is_bot(event, extra):
        return 1                       # drop
    json.dump(event, sys.stdout)       # keep, unchanged
    return 0


if __name__ == "__main__":
    sys.exit(main())
