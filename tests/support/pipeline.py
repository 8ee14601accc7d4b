"""Helpers for tests that run a whole pipeline: polling for a condition, fetching from the control endpoint."""
from __future__ import annotations

import time
import urllib.request
from typing import Callable


def wait_until(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll ``pred`` every 20 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def fetch(url: str) -> bytes:
    """GET ``url`` (loopback in the tests) and return the body."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read()
