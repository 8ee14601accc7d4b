"""Every failure is a WalError naming the file and what to do; odd directories, a damaged ack store,
a read-only checkpoint and a full disk included. ``close()`` always releases the directory."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from orgloop.errors import WalClosedError, WalError
from orgloop.wal import Wal
from orgloop.wal.tools import read_checkpoint
from support.pipeline import wait_until
from tests.wal.conftest import fill_disk

SEG = 16 << 10


def build(path, impl, n=300, acked=100, **kw):
    with Wal(path, segment_size=SEG, implementation=impl, **kw) as wal:
        wal.append_many([b"record %d" % i + b"." * 50 for i in range(n)])
        wal.ack_range(1, acked)


def unacked(path, impl):
    with Wal(path, segment_size=SEG, implementation=impl) as wal:
        return [s for b in wal.replay() for s in b.seqs], wal.recovery


def test_odd_entries_named_like_ours(tmp_path, impl):
    build(tmp_path, impl)
    (tmp_path / "x.tmp").mkdir()                       # a directory, not a spare cut short: left alone
    (tmp_path / "x.tmp" / "keep").write_text("mine")
    seqs, _rec = unacked(tmp_path, impl)
    assert seqs == list(range(101, 301)) and (tmp_path / "x.tmp" / "keep").exists()
    for name in ("quarantine", "checkpoint"):
        work = tmp_path / f"odd-{name}"
        build(work, impl)
        if name == "checkpoint":
            os.rename(work / "checkpoint", work / "checkpoint.saved")
        (work / name).write_text("not a directory")
        with pytest.raises(WalError, match=f"{work / name} is not a directory.*move that file out"):
            Wal(work, segment_size=SEG, implementation=impl)
        with Wal(tmp_path / "probe", segment_size=SEG, implementation=impl):
            pass                                        # the failed opens released nothing they held...
        (work / name).unlink()
        if name == "checkpoint":
            os.rename(work / "checkpoint.saved", work / "checkpoint")
        assert unacked(work, impl)[0] == list(range(101, 301))   # ...and the lock: it opens again


@pytest.mark.parametrize("damage", ["file", "value"])
def test_a_damaged_ack_store_is_rebuilt_and_every_kept_record_is_delivered_again(tmp_path, impl, damage):
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        wal.append_many([b"r%d" % i + b"." * 60 for i in range(900)])
        wal.ack_range(1, 400)
        wal.ack_range(500, 600)
        wal.compact()
        first_kept = wal.stats()["first_seq"]
    assert 1 < first_kept <= 400
    data = tmp_path / "checkpoint" / "data.mdb"
    if damage == "file":
        data.write_bytes(os.urandom(4096) + b"\0" * 8192)
    else:
        import lmdb

        env = lmdb.open(str(tmp_path / "checkpoint"), subdir=True, max_dbs=1)
        with env.begin(write=True) as txn:
            txn.put(b"acks", b"\xc1 not msgpack")
        env.close()
    seqs, rec = unacked(tmp_path, impl)
    assert rec.acks_rebuilt and not rec.clean
    assert any("delivered again" in m for m in rec.messages)
    # Unknown acks count as unacked: nothing is lost. The watermark the close's durable mark carried
    # (400) is still known; the acks above it (500..600) were only in the store, so they are delivered again.
    assert seqs == list(range(401, 901))
    assert rec.acked_by_marks == 400 - first_kept + 1
    assert [p.name.startswith("checkpoint-") for p in (tmp_path / "quarantine").iterdir()] == [True]
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:   # the new store works and is trusted
        assert wal.recovery.clean and wal.acks.watermark == 400
        wal.ack_range(first_kept, 900)
    assert unacked(tmp_path, impl)[0] == []


def test_lost_ack_store_does_not_block_compaction(tmp_path, impl):
    """Records below the oldest kept segment are gone: a rebuilt store starts above them."""
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        wal.append_many([b"r%d" % i + b"." * 60 for i in range(900)])
        wal.ack_range(1, 400)
        wal.compact()
    import shutil

    shutil.rmtree(tmp_path / "checkpoint")
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        first = wal.stats()["first_seq"]
        wal.ack_range(first, 900)
        wal.rotate()
        assert wal.compact() > 0


def test_a_read_only_checkpoint_is_named_with_what_to_do(tmp_path, impl, mounts):
    build(tmp_path, impl)
    mounts("ro", tmp_path / "checkpoint")
    with pytest.raises(WalError, match=r"checkpoint.*writable"):
        Wal(tmp_path, segment_size=SEG, implementation=impl)
    with pytest.raises(WalError, match="in use"):        # the lock is released: only another holder refuses
        with Wal(tmp_path / "other", segment_size=SEG, implementation=impl):
            Wal(tmp_path / "other", segment_size=SEG, implementation=impl)
    assert _lock_is_free(tmp_path)


def _lock_is_free(path) -> bool:
    import fcntl

    fd = os.open(path / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_full_disk_fails_acks_and_close_clearly_and_close_still_releases(tmp_path, impl, mounts):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounts("tmpfs", mnt, "320k")
    log = mnt / "log"
    wal = Wal(log, segment_size=SEG, implementation=impl, ack_flush_interval=3600)
    wal.append_many([b"r%d" % i for i in range(2000)])
    filler = mnt / "filler"
    fill_disk(filler)
    wal.ack_many(range(1, 2001, 2))                         # 1,000 ranges: a save needs new LMDB pages
    with pytest.raises(WalError, match=r"acknowledgements in .*checkpoint.*free disk space"):
        wal.flush_acks()
    with pytest.raises(WalError, match="free disk space"):
        wal.close()
    assert _lock_is_free(log)
    with pytest.raises(WalClosedError):
        wal.ack(2)
    filler.unlink()
    with Wal(log, segment_size=SEG, implementation=impl) as again:   # same process: the lock was released
        # Unsaved acks are delivered again, never lost; seq 1, the watermark the close's durable mark
        # carried to the segment, stays acked.
        assert again.acks.watermark == 1 and again.recovery.acked_by_marks == 1
        assert sum(len(b.seqs) for b in again.replay()) == 1999


def test_a_failing_background_save_is_reported_not_raised_by_ack(tmp_path, impl, mounts):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounts("tmpfs", mnt, "320k")
    log = mnt / "log"
    with Wal(log, segment_size=SEG, implementation=impl, ack_flush_interval=0.01) as wal:
        wal.append_many([b"r%d" % i for i in range(2000)])
        fill_disk(mnt / "filler")
        wal.ack_many(range(1, 2001, 2))
        assert wait_until(lambda: wal.stats()["ack_save_error"] is not None)
        assert "free disk space" in wal.stats()["ack_save_error"]
        (mnt / "filler").unlink()
        wal.ack(2)                                          # the next save succeeds and clears the error
        assert wait_until(lambda: wal.stats()["ack_save_error"] is None)
    assert read_checkpoint(log).watermark == 3


def test_everything_after_close_raises_closed(tmp_path, impl):
    wal = Wal(tmp_path, segment_size=SEG, implementation=impl)
    wal.append(b"x")
    wal.close()
    for call in (lambda: wal.ack(1), lambda: wal.ack_many([1]), lambda: wal.ack_range(1, 1), wal.flush_acks,
                 lambda: list(wal.replay()), wal.compact):
        with pytest.raises(WalClosedError):
            call()
    wal.close()                                             # closing twice is harmless


def test_acks_are_saved_by_the_timer_without_another_call_and_survive_sigkill(tmp_path, impl):
    """A child acks and then only sleeps: the timer saves the acks; we read them from here and kill it."""
    code = f"""
import sys, time
from orgloop.wal import Wal
wal = Wal({str(tmp_path)!r}, segment_size={SEG}, implementation={impl!r}, ack_flush_interval=0.05,
          ack_flush_batch=10**9)
wal.append_many([b"a", b"b", b"c"])
wal.ack(1)
wal.ack(3)
print("acked", flush=True)
time.sleep(60)
"""
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout.readline().strip() == "acked"
            assert wait_until(lambda: (c := read_checkpoint(tmp_path)) is not None and c.watermark == 1
                              and c.ranges() == [(3, 3)])
        finally:
            child.kill()
    assert unacked(tmp_path, impl)[0] == [2]


def test_a_jsonl_log_takes_only_one_utf8_json_value_per_record(tmp_path, impl):
    with Wal(tmp_path, encoding="jsonl", segment_size=SEG, implementation=impl) as wal:
        for bad, why in ((b"not json", "not one JSON value"), (b'{"a":1} {"b":2}', "not one JSON value"),
                         (b'"\xff"', "not UTF-8"), (b"NaN", "not one JSON value")):
            with pytest.raises(ValueError, match=f"record 1 {why}"):
                wal.append_many([b"1", bad])
        with pytest.raises(ValueError):
            wal.append_event({"x": float("nan")})
        assert wal.next_seq == 1                            # nothing of a refused batch was appended
        wal.append_many([b'{"ok":true}', b"[1,2]", b'"caf\xc3\xa9"'])
        assert [r for b in wal.replay(decode=True) for r in b.records] == [{"ok": True}, [1, 2], "café"]
