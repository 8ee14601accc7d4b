"""How long to wait before restarting a thread that died (delivery workers, a route's transform thread)."""
from __future__ import annotations

__all__ = ["RestartBackoff"]

MAX_DELAY = 30.0
#: a restarted thread that dies again within this many seconds doubles the next wait
QUICK = 10.0


class RestartBackoff:
    """``base`` seconds before a restart, doubling (up to 30 s) while restarted threads keep dying within
    10 s of their restart, back to ``base`` after a calmer spell.

    >>> b = RestartBackoff(1.0)
    >>> b.delay; b.restarted(100.0); b.delay; b.restarted(102.0); b.delay; b.restarted(200.0); b.delay
    1.0
    1.0
    2.0
    1.0
    """

    def __init__(self, base: float) -> None:
        self.base = base
        self.delay = base
        self._last = float("-inf")

    def restarted(self, now: float) -> None:
        """A thread was restarted at ``now``: set the wait before the next restart."""
        self.delay = min(self.delay * 2, MAX_DELAY) if now - self._last < QUICK else self.base
        self._last = now
