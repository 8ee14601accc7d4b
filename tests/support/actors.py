"""Test actors shared by the runtime tests (and their child processes)."""
from __future__ import annotations

import time
from typing import Any


def slow_actor(seconds: float) -> type:
    """An actor class that takes ``seconds`` per event and counts them in its class attribute ``delivered``."""

    class SlowActor:
        delivered = 0

        def __init__(self, actor_id: str, config: dict[str, Any], *, base_dir: Any) -> None:
            pass

        def deliver(self, event: dict[str, Any], prompt: Any, config: dict[str, Any]) -> None:
            time.sleep(seconds)
            SlowActor.delivered += 1

        def close(self) -> None:
            pass

    return SlowActor
