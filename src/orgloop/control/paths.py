"""Where a data directory's control socket lives, and the lock that makes one runtime its only server.

The socket is ``<data>/control.sock``. A Unix socket path holds at most 107 bytes, so a longer one moves to
``$XDG_RUNTIME_DIR/orgloop/<hash>.sock`` (when that directory exists and is the user's own), else to
``/tmp/orgloop-<uid>-<hash>/control.sock``; the hash is of the data directory's absolute path, so every
data directory keeps its own socket. The runtime records the path it used in ``runtime.json``.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from pathlib import Path

__all__ = ["SOCKET_NAME", "LOCK_NAME", "MAX_SOCKET_PATH", "ControlPathError", "socket_path", "private_dir",
           "take_lock"]

SOCKET_NAME = "control.sock"
LOCK_NAME = "control.lock"
MAX_SOCKET_PATH = 107          # sun_path is 108 bytes, one for the terminating NUL


class ControlPathError(RuntimeError):
    """The socket's directory is not private, or another runtime already serves this data directory."""


def socket_path(data_dir: Path) -> Path:
    """The control socket of ``data_dir`` (see the module docstring for long paths)."""
    data_dir = Path(data_dir).absolute()
    path = data_dir / SOCKET_NAME
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and _owned_private(Path(runtime_dir)):
        candidate = Path(runtime_dir) / "orgloop" / f"{digest}.sock"
        if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH:
            return candidate
    return Path("/tmp") / f"orgloop-{os.geteuid()}-{digest}" / SOCKET_NAME


def _owned_private(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def private_dir(path: Path) -> None:
    """Make ``path`` a directory only its owner can enter (0700), refusing one that belongs to someone else
    or is a symlink (another user could have planted it in /tmp)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ControlPathError(f"{path} is not a directory (a symlink?); the control socket needs a private one")
    if st.st_uid != os.geteuid():
        raise ControlPathError(f"{path} belongs to uid {st.st_uid}, not to this user; the control socket "
                               "needs a directory of its own")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


def take_lock(data_dir: Path, socket: Path) -> int:
    """Hold ``<data>/control.lock`` for the runtime's life (the fd closes with the process); a second runtime
    of the same data directory gets an error naming the first one's pid and the socket."""
    fd = os.open(Path(data_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ControlPathError(f"another orgloop runtime (pid {holder}) already serves this data directory: "
                               f"its control socket {socket} is in use; stop it first (orgloop stop)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
