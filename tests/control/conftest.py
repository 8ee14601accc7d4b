"""Fixtures of the control-plane tests (see support/daemon.py)."""
from support.daemon import daemon  # noqa: F401  (fixture)
