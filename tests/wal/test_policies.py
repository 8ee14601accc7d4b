"""Rotation by age, the byte cap, follow(), and the interval/none sync policies, on both twins."""
import threading
import time

import pytest

from orgloop.errors import WalFullError
from orgloop.wal import Wal

SEG = 16 << 10


def test_rotation_by_age(tmp_path, impl):
    with Wal(tmp_path, segment_size=1 << 20, max_segment_age=0.05, implementation=impl) as wal:
        wal.append(b"first")
        time.sleep(0.08)
        wal.append(b"second")            # the active segment is too old: sealed before this append
        assert wal.stats()["rotations"] == 1 and wal.stats()["segments"] == 2
        assert [r for b in wal.replay() for r in b.records] == [b"first", b"second"]


def test_byte_cap_error_policy_keeps_what_was_appended(tmp_path, impl):
    with Wal(tmp_path, segment_size=SEG, max_bytes=3 * SEG, implementation=impl) as wal:
        with pytest.raises(WalFullError, match="byte cap") as err:
            for _ in range(1000):
                wal.append_many([b"x" * 500] * 4)
        appended_total = wal.next_seq - 1
        assert wal.stats()["segments"] == 3 and appended_total > 0
        partial = err.value.appended       # the batch that hit the cap: what got in is listed
        assert partial.stop == wal.next_seq
        wal.ack_range(1, appended_total)     # acking frees room: appends work again
        assert wal.append(b"room again") == appended_total + 1


def test_byte_cap_drop_oldest_policy(tmp_path, impl, caplog):
    with Wal(tmp_path, segment_size=SEG, max_bytes=3 * SEG, full_policy="drop_oldest", implementation=impl) as wal:
        for _ in range(200):
            wal.append_many([b"y" * 500] * 4)
        st = wal.stats()
        assert st["segments"] <= 3 and st["dropped_records"] > 0
        kept = [s for b in wal.replay() for s in b.seqs]
        assert kept == list(range(kept[0], wal.next_seq)) and kept[0] > 1
    assert "dropped segment" in caplog.text


def test_follow_yields_new_records_as_they_arrive(tmp_path, impl):
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        wal.append_many([b"a", b"b"])
        got = []

        def consume():
            for batch in wal.follow(timeout=2.0):
                got.extend(batch.records)
                if len(got) >= 5:
                    return

        t = threading.Thread(target=consume)
        t.start()
        time.sleep(0.05)
        wal.append(b"c")
        wal.append_many([b"d", b"e"])
        t.join(timeout=5)
        assert not t.is_alive() and got == [b"a", b"b", b"c", b"d", b"e"]


@pytest.mark.parametrize("policy", ["interval", "none"])
def test_interval_and_none_write_to_the_os_before_returning(tmp_path, impl, policy):
    with Wal(tmp_path, segment_size=SEG, sync=policy, sync_interval_ms=5, implementation=impl) as wal:
        seq = wal.append(b"visible")
        c = wal._committer
        assert c.written_seq >= seq                       # in the page cache: survives a process crash
        if policy == "interval":
            deadline = time.monotonic() + 5
            while c.durable_seq < seq and time.monotonic() < deadline:
                time.sleep(0.005)
            assert c.durable_seq >= seq                   # the syncer made it durable on its own
        else:
            syncs = c.stats()["syncs"]
            time.sleep(0.05)
            assert c.stats()["syncs"] == syncs            # nothing syncs by itself...
            wal.sync_now()
            assert c.durable_seq >= seq                   # ...until asked (or a segment is sealed)


def test_sync_always_pays_one_fdatasync_per_batch_below_the_window(tmp_path, impl):
    """The sync window bounds what a single huge batch leaves unsynced; batches smaller than it must not
    add syncs of their own. (The window once counted bytes since the last mid-batch sync, not since the
    last durable point, so every 8 MiB of ordinary batches paid an extra fdatasync.)"""
    record = b"r" * 1000
    with Wal(tmp_path, segment_size=16 << 20, sync_window=256 << 10, implementation=impl) as wal:
        wal.append_many([record] * 100)                   # the log exists and is past its first sync
        before = wal._committer.stats()["syncs"]
        for _ in range(40):                               # 40 batches of ~100 KiB: 4 MiB, 16 windows
            wal.append_many([record] * 100)
        assert wal.stats()["rotations"] == 0
        assert wal._committer.stats()["syncs"] - before == 40
        big = wal.append_many([record] * 1000)            # one ~1 MiB batch: synced every 256 KiB
        assert wal._committer.stats()["syncs"] - before >= 40 + 4
        assert len(big) == 1000
