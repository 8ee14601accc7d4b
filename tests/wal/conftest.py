"""Fixtures for WAL tests that need root: small tmpfs mounts and read-only bind mounts.

CI runs as root, so these never skip there: as root a failed mount fails the test. They skip only for
other users.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode:
        pytest.fail(f"mount {' '.join(args)} failed as root: {proc.stderr.strip()}")


@pytest.fixture
def mounts() -> Iterator[Callable[..., None]]:
    """``mounts("tmpfs", path, size)`` mounts a small tmpfs; ``mounts("ro", path)`` makes ``path`` a
    read-only bind mount of itself. Everything is unmounted after the test."""
    done: list[Path] = []

    def mount(kind: str, path: Path, size: str = "256k") -> None:
        if os.geteuid() != 0:
            pytest.skip("mounting needs root (CI runs as root)")
        if kind == "tmpfs":
            _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
            done.append(path)
        else:
            _mount("--bind", str(path), str(path))
            done.append(path)
            _mount("-o", "remount,ro,bind", str(path))

    yield mount
    for path in reversed(done):
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill_disk(path: Path) -> None:
    """Write ``path`` until its file system has no free block left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
