"""The pre-writer fills fallocated segments ahead of the appender; it must never overwrite a record.

Here it runs without its quiet period and in 4 KiB chunks, so that it claims the region just past the
append offset over and over while several threads append: every acknowledged record must be intact
after a reopen, also after a power cut (pages written since the last fdatasync lost at random).
"""
from __future__ import annotations

import contextlib
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from orgloop.wal import Wal, fileio, prewriter
from support.pipeline import wait_until

from .powercut import PowerCutFiles

SEGMENT = 256 << 10


@pytest.fixture
def eager(monkeypatch):
    """The pre-writer at its most aggressive: no quiet period, one page per claim."""
    monkeypatch.setattr(prewriter, "QUIET", 0.0)
    monkeypatch.setattr(prewriter, "CHUNK", 4096)


@contextlib.contextmanager
def slow_fills() -> Iterator[None]:
    """Make the pre-writer pause between claiming a region and writing it, so that a writer that did not
    wait for the claim would put its records there first (and the fill would then erase them)."""
    inner = fileio.pwrite

    def pwrite(fd, data, offset):
        if threading.current_thread().name == "orgloop-wal-prewrite":
            time.sleep(0.002)
        return inner(fd, data, offset)

    fileio.pwrite = pwrite
    try:
        yield
    finally:
        fileio.pwrite = inner


def _append_from_threads(wal: Wal, threads: int, rounds: int, seed: int) -> dict[int, bytes]:
    """Each thread appends small batches; returns every acknowledged seq with its record."""
    acked: dict[int, bytes] = {}
    lock = threading.Lock()

    def worker(k: int) -> None:
        rnd = random.Random(seed * 100 + k)
        for i in range(rounds):
            batch = [b"%d:%d:%d:" % (k, i, j) + bytes([k + 65]) * rnd.randrange(1, 900)
                     for j in range(rnd.randrange(1, 6))]
            seqs = wal.append_many(batch)
            with lock:
                acked.update(zip(seqs, batch))

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return acked


def _check(path: Path, impl: str, acked: dict[int, bytes]) -> None:
    with Wal(path, segment_size=SEGMENT, implementation=impl) as wal:
        assert wal.recovery.lost_records == 0, wal.recovery.messages
        got = {s: r for b in wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)}
    missing = [s for s in acked if got.get(s) != acked[s]]
    assert not missing, f"{len(missing)} acknowledged records lost or changed, first {missing[:5]}"


def test_appends_racing_the_prewriter_lose_nothing(tmp_path, impl, eager):
    path = tmp_path / "wal"
    with slow_fills(), Wal(path, segment_size=SEGMENT, implementation=impl) as wal:
        acked = _append_from_threads(wal, threads=4, rounds=150, seed=1)
        stats = wal.stats()
    assert stats["rotations"] >= 3, "the appends must cross several fallocated segments"
    assert stats["prewritten_bytes"] > 0, "the pre-writer never ran: the test would prove nothing"
    _check(path, impl, acked)


@pytest.mark.parametrize("mode", ["random", "drop"])
def test_a_power_cut_while_the_prewriter_runs_loses_nothing_acknowledged(tmp_path, impl, eager, mode):
    files = PowerCutFiles(random.Random(7))
    files.install()
    try:
        live, copy = tmp_path / "live", tmp_path / "copy"
        with slow_fills(), Wal(live, segment_size=SEGMENT, implementation=impl) as wal:
            acked = _append_from_threads(wal, threads=3, rounds=60, seed=2)
            assert wal.stats()["prewritten_bytes"] > 0
            shutil.copytree(live, copy)          # the power cut strikes here, the pre-writer still running
            files.cut(live, copy, mode)
    finally:
        files.uninstall()
    _check(copy, impl, acked)


def test_a_quiet_log_gets_its_active_segment_and_spare_written(tmp_path, impl):
    with Wal(tmp_path, segment_size=SEGMENT, implementation=impl) as wal:
        wal.append_many([b"x" * 100] * 10)
        wal.rotate()
        wal.append(b"y")
        # the log is quiet now: the pre-writer fills the rest of the active segment, then the spare
        assert wait_until(lambda: wal.stats()["prewritten_bytes"] >= SEGMENT, timeout=60)
        assert [r for b in wal.replay(unacked_only=False) for r in b.records] == [b"x" * 100] * 10 + [b"y"]
    with Wal(tmp_path, segment_size=SEGMENT, implementation=impl) as wal:
        assert wal.recovery.clean
        assert wal.append(b"z") == 12
