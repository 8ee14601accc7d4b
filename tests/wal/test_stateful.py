"""A hypothesis state machine for the WAL under power cuts, on both twins.

The log runs on a file layer (``powercut.py``) that remembers what was written since each file's last
fdatasync. A power cut copies the directory and, in the copy, loses every such page, or a random subset
of them (persistence can be reordered), or none (a process crash); the machine then continues on the
copy. Cuts happen between operations and in the middle of an append (at the n-th fdatasync of the
call, after its data was written): the records of that call were never acknowledged, so they may or
may not come back, but only intact and under the seqs they were given. Invariants, on every step: nothing acknowledged is lost, no seq is issued twice, no record is
invented, and ``lost_records == 0`` (a power cut never damages what was durable; torn records are
counted apart). Acks are saved only at known points here (flush_acks, compaction, close), so the
model knows the least a crash may keep; the log may keep more (acks are at-least-once).
"""
import itertools
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orgloop._twins import require_compiled
from orgloop.errors import WalError
from orgloop.wal import Wal, twins

from .powercut import PowerCutFiles

SEGMENT = 16 << 10
payloads = st.binary(min_size=1, max_size=2500)
picks = st.integers(min_value=0, max_value=1 << 16)
RUNS = {"power_cuts": 0, "cuts_mid_append": 0, "pages_lost": 0, "pages_kept": 0, "steps": 0}


def _scratch_root() -> Path:
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="orgloop-sm-", dir=shm if shm.is_dir() else None))


class WalMachine(RuleBasedStateMachine):
    implementation = "pure"

    def __init__(self):
        super().__init__()
        self.root = _scratch_root()
        self.counter = itertools.count()
        self.files = PowerCutFiles(random.Random(next(self.counter)))
        self.files.install()
        self.path = self._new_dir()
        self.wal = self._open()
        self.records: dict[int, bytes] = {}      # every acknowledged append
        self.in_flight: dict[int, bytes] = {}    # appended when a power cut struck: never acknowledged
        self.acked: set[int] = set()             # acked by the consumer (saved or not)
        self.issued_max = 0

    def _new_dir(self) -> Path:
        return self.root / f"log{next(self.counter)}"

    def _open(self) -> Wal:
        return Wal(self.path, segment_size=SEGMENT, sync="always", ack_flush_interval=1e9, ack_flush_batch=1 << 62,
                   implementation=self.implementation)

    def _issued(self, seqs) -> None:
        seqs = list(seqs)
        assert seqs and min(seqs) > self.issued_max, "a sequence number was issued twice"
        self.issued_max = max(seqs)

    # ------------------------------------------------------------------ rules
    @rule(data=payloads)
    def append(self, data):
        seq = self.wal.append(data)
        self._issued([seq])
        self.records[seq] = data

    @rule(batch=st.lists(payloads, min_size=1, max_size=20))
    def append_many(self, batch):
        seqs = self.wal.append_many(batch)
        self._issued(seqs)
        self.records.update(zip(seqs, batch))

    # A power cut's outcome may depend on timing (a background thread's fdatasync), so what is drawn never
    # depends on the state: a pick is drawn as an integer and mapped onto the records there are.
    @rule(pick=picks)
    def ack(self, pick):
        if self.records:
            seq = sorted(self.records)[pick % len(self.records)]
            self.wal.ack(seq)
            self.acked.add(seq)

    @rule(pick=picks, span=picks)
    def ack_range(self, pick, span):
        if self.records:
            seqs = sorted(self.records)
            i = pick % len(seqs)
            lo, hi = seqs[i], seqs[i + span % (len(seqs) - i)]
            self.wal.ack_range(lo, hi)
            self.acked.update(s for s in self.records if lo <= s <= hi)

    @rule()
    def rotate(self):
        self.wal.rotate()

    @rule()
    def compact(self):
        self.wal.compact()

    @rule()
    def flush_acks(self):
        self.wal.flush_acks()

    @rule()
    def close_and_reopen(self):
        self.wal.close()
        self.wal = self._open()
        assert self.wal.recovery.clean, self.wal.recovery.messages

    def _continue_on(self, copy: Path) -> None:
        """The process is gone: continue on the copy the power cut left."""
        old, live = self.wal, self.path
        if old._preparer is not None:          # its threads stop with it
            old._preparer.join()
        try:
            old.close()                        # the abandoned directory is not looked at again
        except WalError:
            pass
        self.files.forget()
        shutil.rmtree(live, ignore_errors=True)
        self.path = copy
        self.wal = self._open()
        RUNS["power_cuts"] += 1
        rec = self.wal.recovery
        assert rec.lost_records == 0, rec.messages
        back = {s: r for b in self.wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)
                if s in self.in_flight}
        vanished = len(self.in_flight) - len(back)
        assert rec.torn_records <= vanished, (rec.torn_records, vanished)
        for seq, r in back.items():            # recovered and fdatasynced by the open: durable from here on
            assert r == self.in_flight[seq]
            self.records[seq] = r
        self.in_flight.clear()

    @rule(mode=st.sampled_from(["drop", "random", "keep"]))
    def power_cut_and_reopen(self, mode):
        if self.wal._preparer is not None:
            self.wal._preparer.join()
        copy = self._new_dir()
        shutil.copytree(self.path, copy, ignore=shutil.ignore_patterns("LOCK"))
        self.files.cut(self.path, copy, mode)
        self._continue_on(copy)

    @rule(batch=st.lists(payloads, min_size=1, max_size=30), mode=st.sampled_from(["drop", "random", "keep"]),
          hits=st.integers(min_value=1, max_value=3))
    def power_cut_during_append(self, batch, mode, hits):
        live, copy = self.path, self._new_dir()

        def cut():
            shutil.copytree(live, copy, ignore=shutil.ignore_patterns("LOCK"))
            self.files.cut(live, copy, mode)

        first = self.wal.next_seq
        self.files.arm(hits, cut)
        try:
            seqs = self.wal.append_many(batch)
        except WalError:
            assert self.files.fired
        finally:
            self.files.disarm()
        if not self.files.fired:               # it finished before the n-th fdatasync: acknowledged
            self._issued(seqs)
            self.records.update(zip(seqs, batch))
            return
        self.in_flight = dict(zip(range(first, first + len(batch)), batch))
        self.issued_max = max(self.issued_max, first + len(batch) - 1)
        RUNS["cuts_mid_append"] += 1
        self._continue_on(copy)

    # ------------------------------------------------------------------ invariants
    @invariant()
    def nothing_durable_is_lost_or_invented(self):
        RUNS["steps"] += 1
        full = {s: r for b in self.wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)}
        for seq, rec in full.items():
            assert self.records.get(seq) == rec, f"seq {seq} was not appended as that record"
        missing = [s for s in self.records if s not in self.acked and s not in full]
        assert not missing, f"acknowledged, unacked records lost: {missing[:10]}"
        unacked = {s for b in self.wal.replay() for s in b.seqs}
        assert {s for s in self.records if s not in self.acked} <= unacked <= set(self.records)
        assert self.wal.stats()["lost_records"] == 0
        assert self.wal.next_seq > self.issued_max

    def teardown(self):
        try:
            self.wal.close()
        finally:
            self.files.uninstall()
            RUNS["pages_lost"] += self.files.pages_lost
            RUNS["pages_kept"] += self.files.pages_kept
            shutil.rmtree(self.root, ignore_errors=True)


SETTINGS = settings(max_examples=30, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class TestWalPowerCutPure(WalMachine.TestCase):
    settings = SETTINGS


class CompiledWalMachine(WalMachine):
    implementation = "compiled"


@pytest.mark.skipif(twins.compiled is None and not require_compiled(), reason="compiled WAL not built")
class TestWalPowerCutCompiled(CompiledWalMachine.TestCase):
    settings = SETTINGS


def test_report_power_cut_counts():
    """Runs after the machines (file order): prints how many power cuts they simulated."""
    print(f"POWER-CUTS {RUNS}")
