"""Acks made in order ride on the durable marks (format 3): each write round's mark carries the ack
watermark to disk with the round's own fdatasync, so the ack saver does not commit to LMDB per batch
while the log appends, and the next open takes the marks' watermark when the ack store is older."""
from __future__ import annotations

import subprocess
import sys

from orgloop.wal import Wal
from orgloop.wal.tools import open_view, read_acks, read_checkpoint
from support.pipeline import wait_until

SEG = 256 << 10


def saved(wal: Wal):
    """What the log's ack store holds in LMDB now (LMDB allows one environment per file per process)."""
    return wal._acks_store.load()


def _ride_until_riding(wal: Wal, rounds: int = 2000, size: int = 10) -> int:
    """Append rounds of ``size`` records, acking each once it is durable, until the saver has let the
    acks ride on the marks at least once; returns the watermark reached."""
    for _ in range(rounds):
        seqs = wal.append_many([b"x" * 40] * size)
        wal.ack_range(seqs[0], seqs[-1])
        if wal.stats()["ack_mark_rides"]:
            return seqs[-1]
    raise AssertionError("the acks never rode on the marks")


def test_acks_made_in_order_ride_on_the_marks_instead_of_a_commit_per_batch(tmp_path, impl):
    """Every round acks a full batch, so without the marks each round would be a commit of its own
    (the timer is an hour long: only the batch threshold can commit here)."""
    with Wal(tmp_path, segment_size=4 << 20, implementation=impl, ack_flush_interval=3600,
             ack_flush_batch=100) as wal:
        for _ in range(300):
            seqs = wal.append_many([b"y" * 40] * 100)
            wal.ack_range(seqs[0], seqs[-1])
        stats = wal.stats()
        assert stats["ack_mark_rides"] >= 1
        assert stats["ack_commits"] <= 3, stats["ack_commits"]
        assert stats["syncs"] >= 300          # the marks cost no fdatasync of their own
    with Wal(tmp_path, implementation=impl) as wal:
        assert wal.acks.watermark == 30_000 and not list(wal.replay())


def test_out_of_order_acks_above_the_watermark_are_still_committed_by_count(tmp_path, impl):
    """Marks carry only the watermark: acks held above it go to LMDB on the batch threshold as before."""
    with Wal(tmp_path, segment_size=4 << 20, implementation=impl, ack_flush_interval=3600,
             ack_flush_batch=100) as wal:
        _ride_until_riding(wal, size=100)
        commits = wal.stats()["ack_commits"]
        held = wal.append_many([b"z" * 40] * 400)
        wal.ack_range(held[1], held[-1])          # held[0] stays unacked: 399 acks above the watermark
        assert wait_until(lambda: wal.stats()["ack_commits"] > commits)
        assert saved(wal).ranges() == [(held[1], held[-1])]


def test_when_the_log_goes_quiet_the_acks_that_rode_on_marks_reach_the_ack_store(tmp_path, impl):
    """The last batch's acks are in no mark (no round came after them): the saver's next look finds
    the marks behind and commits them to LMDB without another call."""
    with Wal(tmp_path, segment_size=4 << 20, implementation=impl, ack_flush_interval=0.02,
             ack_flush_batch=5) as wal:
        last = _ride_until_riding(wal)
        assert wait_until(lambda: saved(wal).watermark == last)


def test_sealing_a_segment_saves_the_acks_that_rode_on_its_marks(tmp_path, impl):
    """The next open reads only the active segment's marks, so a rotation saves what rode on the old one."""
    with Wal(tmp_path, segment_size=SEG, implementation=impl, ack_flush_interval=3600, ack_flush_batch=5) as wal:
        last = _ride_until_riding(wal)
        assert saved(wal).watermark < last
        wal.rotate()
        assert saved(wal).watermark == last


def test_a_sigkilled_writer_keeps_the_acks_its_marks_carried(tmp_path, impl):
    """The child never commits an ack to LMDB (an hour's timer, an unreachable batch); the marks of its
    later write rounds carry its in-order acks, and the next open (and the offline tools) take them."""
    code = f"""
import os, signal
from orgloop.wal import Wal
wal = Wal({str(tmp_path)!r}, segment_size={SEG}, implementation={impl!r}, ack_flush_interval=3600,
          ack_flush_batch=10**9)
for _ in range(50):
    seqs = wal.append_many([b"r" * 30] * 10)
    wal.ack_range(seqs[0], seqs[-1])
wal.append_many([b"last"])            # this round's mark carries the watermark 500
print(wal.stats()["ack_commits"], flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    stored = read_checkpoint(tmp_path)
    assert stored is None or stored.watermark == 0
    assert read_acks(open_view(tmp_path)).watermark == 500
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        assert wal.acks.watermark == 500 and wal.recovery.acked_by_marks == 500
        assert [s for b in wal.replay() for s in b.seqs] == [501]
