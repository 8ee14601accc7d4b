"""Mutation guards for the committers (both twins): every acknowledged append was fdatasynced, and
concurrent appenders share fdatasyncs (group commit), rather than one fdatasync each.

The power-cut machine (``test_stateful.py``) fails if a committer stops calling fdatasync: what was
never synced is lost at the next simulated power cut. Here the file layer counts the syncs."""
import random
import threading
import time

from orgloop.wal import Wal

from .powercut import PowerCutFiles

THREADS = 8


class SlowFirstSync(PowerCutFiles):
    """Holds the first fdatasync of each round of the test until every appender has started, so the
    others queue behind it; a committer that groups them then needs one more fdatasync for all."""

    def __init__(self) -> None:
        super().__init__(random.Random(0))
        self.started = 0
        self.hold = threading.Event()
        self.cond = threading.Condition()
        self.counted = 0

    def fdatasync(self, fd: int) -> None:
        if threading.current_thread().name == "orgloop-wal-prewrite":   # fills while the log is quiet:
            super().fdatasync(fd)                                      # not the committer's syncs
            return
        if self.hold.is_set():
            self.hold.clear()
            with self.cond:
                self.cond.wait_for(lambda: self.started >= THREADS, timeout=10)
            time.sleep(0.2)
        self.counted += 1
        super().fdatasync(fd)


def test_concurrent_appenders_share_fdatasyncs(tmp_path, impl):
    files = SlowFirstSync()
    files.install()
    try:
        with Wal(tmp_path, segment_size=1 << 20, implementation=impl) as wal:
            total_syncs, total_appends = 0, 0
            for _round in range(3):
                files.started = 0
                before = files.counted
                files.hold.set()
                seqs: list[int] = []

                def work(k: int) -> None:
                    with files.cond:
                        files.started += 1
                        files.cond.notify_all()
                    seqs.append(wal.append(b"record %d" % k))

                threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(timeout=30)
                assert len(seqs) == THREADS
                total_syncs += files.counted - before
                total_appends += THREADS
            assert total_syncs >= 3, "every round must fdatasync"
            # One held fdatasync and one for everyone queued behind it, per round; one per append if the
            # committer stopped grouping them.
            assert total_syncs <= total_appends // 2, f"{total_syncs} fdatasyncs for {total_appends} appends"
    finally:
        files.uninstall()
