"""A power-cut model for the WAL's files (in the spirit of RocksDB's FaultInjectionTestFS, ALICE and
CrashMonkey): a file layer that remembers, per file, which 4 KiB pages were written since its last
``fdatasync`` and what they held then. At a simulated power cut each such page is either lost (it goes
back to what was durable) or kept, at random (the disk may persist pages in any order), or all are lost.

It is put under the log through ``orgloop.wal.fileio`` (segments, recovery, the pure committer) and
``_wal.set_io_hooks`` (the compiled committer, through ctypes callbacks). What it does not model: LMDB
(its own synced commits are trusted; the tests commit acks only at known points) and directory entries
(renames, creations and unlinks are taken as durable at once; the WAL fsyncs the directory after each).
"""
from __future__ import annotations

import ctypes
import errno
import os
import random
import threading
from pathlib import Path

from orgloop.wal import fileio, twins

PAGE = 4096

_PWRITE = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64,
                           use_errno=True)
_FDATASYNC = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, use_errno=True)


class PowerCutFiles:
    """Install with :meth:`install` (and :meth:`uninstall`); :meth:`cut` applies a power cut to a copy."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._lock = threading.Lock()
        self._unsynced: dict[int, dict[int, bytes]] = {}     # inode -> page -> content at the last fdatasync
        self._size: dict[int, int] = {}                      # inode -> file size at the last fdatasync
        self.syncs = 0
        self.writes = 0
        self.pages_lost = 0
        self.pages_kept = 0
        self._callbacks: tuple[object, object] | None = None
        self._armed: tuple[int, int, object] | None = None
        self.fired = False

    # ------------------------------------------------------------------ the file layer
    def pwrite(self, fd: int, data, offset: int) -> int:
        st = os.fstat(fd)
        n = len(data)
        with self._lock:
            pages = self._unsynced.setdefault(st.st_ino, {})
            self._size.setdefault(st.st_ino, st.st_size)
            for page in range(offset // PAGE, (offset + max(n, 1) - 1) // PAGE + 1):
                if page not in pages:
                    pages[page] = os.pread(fd, PAGE, page * PAGE)
            self.writes += 1
        return os.pwrite(fd, data, offset)

    def arm(self, hits: int, action) -> None:
        """At the ``hits``-th fdatasync of this thread, call ``action`` (the power cut, taken while the
        data of the write round is written but not yet synced) and fail that fdatasync with EIO."""
        self._armed = (threading.get_ident(), hits, action)
        self.fired = False

    def disarm(self) -> None:
        self._armed = None

    def fdatasync(self, fd: int) -> None:
        armed = self._armed
        if armed is not None and armed[0] == threading.get_ident():
            if armed[1] <= 1:
                self._armed = None
                self.fired = True
                armed[2]()
                raise OSError(errno.EIO, "power cut (simulated)")
            self._armed = (armed[0], armed[1] - 1, armed[2])
        ino = os.fstat(fd).st_ino
        os.fdatasync(fd)
        with self._lock:
            self._unsynced.pop(ino, None)
            self._size.pop(ino, None)
            self.syncs += 1

    def install(self) -> None:
        """Route the WAL's data writes and syncs (both twins) through this layer until :meth:`uninstall`."""
        fileio.pwrite = self.pwrite
        fileio.fdatasync = self.fdatasync
        compiled = twins.compiled
        if compiled is None:
            return

        def c_pwrite(fd: int, buf: int, count: int, offset: int) -> int:
            try:
                return self.pwrite(fd, ctypes.string_at(buf, count), offset)
            except OSError as exc:
                ctypes.set_errno(exc.errno or 5)
                return -1

        def c_fdatasync(fd: int) -> int:
            try:
                self.fdatasync(fd)
                return 0
            except OSError as exc:
                ctypes.set_errno(exc.errno or 5)
                return -1

        pw, fs = _PWRITE(c_pwrite), _FDATASYNC(c_fdatasync)
        self._callbacks = (pw, fs)        # kept alive while the compiled committer may call them
        compiled.set_io_hooks(ctypes.cast(pw, ctypes.c_void_p).value, ctypes.cast(fs, ctypes.c_void_p).value)

    def uninstall(self) -> None:
        fileio.pwrite = os.pwrite
        fileio.fdatasync = os.fdatasync
        if twins.compiled is not None:
            twins.compiled.set_io_hooks(0, 0)
        self._callbacks = None

    # ------------------------------------------------------------------ the power cut
    def cut(self, live: Path, copy: Path, mode: str) -> None:
        """Make ``copy`` (a copy of ``live`` taken at the cut) hold what the disk would after a power cut.

        ``mode``: ``drop`` loses every page written since its file's last fdatasync, ``random`` loses
        each such page or keeps it at random, ``keep`` keeps them all (a process crash).
        """
        by_inode = {p.stat().st_ino: p for p in live.rglob("*") if p.is_file()}
        with self._lock:
            unsynced, sizes = self._unsynced, self._size
            self._unsynced, self._size = {}, {}
        for ino, pages in unsynced.items():
            src = by_inode.get(ino)
            if src is None:          # unlinked since: nothing of it survives anyway
                continue
            target = copy / src.relative_to(live)
            if not target.exists():
                continue
            grown_to_keep = sizes[ino]
            with open(target, "r+b") as f:
                for page, old in sorted(pages.items()):
                    lose = mode == "drop" or (mode == "random" and self.rng.random() < 0.5)
                    if lose:
                        f.seek(page * PAGE)
                        f.write(old)
                        self.pages_lost += 1
                    else:
                        grown_to_keep = max(grown_to_keep, min((page + 1) * PAGE, os.fstat(f.fileno()).st_size))
                        self.pages_kept += 1
                if os.fstat(f.fileno()).st_size > grown_to_keep:
                    f.truncate(grown_to_keep)

    def forget(self) -> None:
        """Drop what is remembered (the files it was about are gone)."""
        with self._lock:
            self._unsynced.clear()
            self._size.clear()
