"""orgloop's write-ahead log (see ``docs/wal-format.md``).

>>> from orgloop.wal import Wal, implementation
>>> implementation() in ("compiled", "pure")
True
"""
from __future__ import annotations

from orgloop._twins import load_twins
from orgloop.errors import (WalClosedError, WalCorruptionError, WalError, WalFormatError, WalFullError,
                            WalRecordTooLargeError)

twins = load_twins("orgloop.wal._wal", "orgloop.wal._wal_py")

from orgloop.wal.log import FULL_POLICIES, SYNC_POLICIES, RecoveryReport, ReplayBatch, Wal  # noqa: E402

__all__ = ["Wal", "ReplayBatch", "RecoveryReport", "SYNC_POLICIES", "FULL_POLICIES", "implementation",
           "crc32c", "WalError", "WalClosedError", "WalFormatError", "WalCorruptionError", "WalFullError",
           "WalRecordTooLargeError"]


def implementation() -> str:
    """``compiled`` or ``pure``: which twin is live."""
    return twins.name


def crc32c(data: bytes, value: int = 0) -> int:
    """CRC-32C of ``data`` (continuing from ``value``) with the live twin."""
    return twins.active.crc32c(data, value)
