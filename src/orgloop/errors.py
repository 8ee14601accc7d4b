"""Exceptions shared by every orgloop room (both twins raise these, with identical messages)."""
from __future__ import annotations


class OrgloopError(Exception):
    """Base class of every error orgloop raises on purpose."""


class WalError(OrgloopError):
    """Base class of write-ahead-log errors."""


class WalClosedError(WalError):
    """The log was used after ``close()``."""


class WalFormatError(WalError):
    """A segment is not an orgloop WAL segment, or was written by a newer format version."""


class WalNewerFormatError(WalFormatError):
    """A segment with a valid checksum was written by a newer WAL format version than this orgloop reads."""


class WalCorruptionError(WalError):
    """Damage was found that the log could not recover from on its own."""


class WalFullError(WalError):
    """The log reached its configured byte cap (``max_bytes``) and the policy is ``error``."""


class WalRecordTooLargeError(WalError):
    """One record is larger than a segment can hold."""


class ConfigError(OrgloopError):
    """A project or workspace file is invalid."""
