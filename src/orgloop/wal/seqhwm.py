"""The sequence-number high-water mark: sequence numbers are never handed out twice.

A record the log handed out can vanish from disk (a torn tail after a power cut, media damage, a
``sync=none`` write that never reached the disk), and its number must still never be issued again: a
consumer may have seen or acked it. So the writer *reserves* numbers in LMDB, next to the ack state, in
blocks of :data:`BLOCK`: before it issues a seq at or above the reservation it durably moves the
reservation up by a block. That is one LMDB commit per 65,536 records, nothing per append.

A clean close stores the exact next seq (``clean``), so the next open skips nothing, and any seq below
it that the log no longer holds was durable: lost, not torn. After a crash the reservation is what is
known, and the next open continues above it.
"""
from __future__ import annotations

import lmdb

from orgloop.errors import WalError

__all__ = ["BLOCK", "load", "store"]

BLOCK = 1 << 16
_KEY = b"seq_hwm"


def load(env: lmdb.Environment) -> tuple[int, bool] | None:
    """``(reserved, clean)``: every seq ever issued is below ``reserved``; with ``clean`` the log was closed
    cleanly at exactly that seq. None if there is none (a log written before marks existed, or a new
    one); ``(-1, False)`` if the stored value is unreadable (the caller assumes the worst)."""
    with env.begin() as txn:
        raw = txn.get(_KEY)
    if raw is None:
        return None
    number, _, flag = bytes(raw).partition(b" ")
    if not number.isdigit() or flag not in (b"", b"clean"):
        return -1, False
    return int(number), flag == b"clean"


def store(env: lmdb.Environment, reserved: int, clean: bool = False) -> None:
    """Write the mark and sync it to disk before returning; raises :class:`WalError` if it cannot."""
    try:
        with env.begin(write=True) as txn:
            txn.put(_KEY, b"%d clean" % reserved if clean else b"%d" % reserved)
        env.sync(True)
    except lmdb.Error as exc:
        raise WalError(f"cannot record the sequence-number high-water mark in {env.path()}: {exc}; no record "
                       f"was appended past it (free some space and retry)") from exc
