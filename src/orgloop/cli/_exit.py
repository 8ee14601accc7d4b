"""The exit codes every ``orgloop`` command uses (``docs/operations.md`` "Exit codes")."""
from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_ERROR", "EXIT_ATTENTION", "EXIT_NOT_RUNNING", "EXIT_DAMAGE", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_ERROR = 1
#: a documented "needs attention" state: ``plan`` has changes, ``status`` is unhealthy, ``test`` delivered nothing
EXIT_ATTENTION = 2
EXIT_NOT_RUNNING = 3
#: ``wal verify`` found damage
EXIT_DAMAGE = 4
#: a bad flag or argument (EX_USAGE of sysexits.h)
EXIT_USAGE = 64
