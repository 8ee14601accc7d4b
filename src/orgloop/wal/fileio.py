"""The WAL's writes and syncs of segment data, in one place.

Every ``pwrite`` and ``fdatasync`` of segment bytes (the pure committer, segment preparation, recovery)
goes through these two names, so that a test can put a file layer under the log that remembers what was
written since each file's last ``fdatasync`` and simulates a power cut (``tests/wal/powercut.py``). The
compiled committer takes the same layer through ``_wal.set_io_hooks``, set only by tests.
"""
from __future__ import annotations

import os

__all__ = ["pwrite", "fdatasync"]

pwrite = os.pwrite
fdatasync = os.fdatasync
