"""A hypothesis state machine for the WAL against an in-memory model, on both twins.

"Crash" copies the directory while the log is open (every append has returned, so under
sync=always the copy holds everything acknowledged) and continues on the copy without closing.
Acks are persisted only at deterministic points here (ack_flush_interval is huge), so the model knows
exactly which acks survive a crash: those persisted by a compaction, a close, or flush_acks().
"""
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from orgloop._twins import require_compiled
from orgloop.wal import Wal, twins

SEGMENT = 16 << 10
payloads = st.binary(min_size=1, max_size=2500)


class WalMachine(RuleBasedStateMachine):
    implementation = "pure"

    def __init__(self):
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="orgloop-sm-"))
        self.counter = itertools.count()
        self.path = self._new_dir()
        self.wal = self._open()
        self.records: dict[int, bytes] = {}
        self.acked: set[int] = set()
        self.persisted: set[int] = set()
        self.last_next = 1

    def _new_dir(self) -> Path:
        return self.root / f"log{next(self.counter)}"

    def _open(self, path=None) -> Wal:
        return Wal(path or self.path, segment_size=SEGMENT, sync="always", ack_flush_interval=1e9, ack_flush_batch=1 << 62,
                   implementation=self.implementation)

    def _compacted(self, before: int) -> None:
        if self.wal.counters["compacted_segments"] != before:
            self.persisted = set(self.acked)

    # ------------------------------------------------------------------ rules
    @rule(data=payloads)
    def append(self, data):
        seq = self.wal.append(data)
        assert seq > max(self.records, default=0) and seq >= self.last_next
        self.records[seq] = data

    @rule(batch=st.lists(payloads, min_size=1, max_size=20))
    def append_many(self, batch):
        before = self.wal.counters["compacted_segments"]
        seqs = self.wal.append_many(batch)
        self._compacted(before)
        assert len(seqs) == len(batch) and list(seqs) == sorted(seqs)
        self.records.update(zip(seqs, batch))

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def ack(self, data):
        seq = data.draw(st.sampled_from(sorted(self.records)))
        self.wal.ack(seq)
        self.acked.add(seq)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def ack_range(self, data):
        seqs = sorted(self.records)
        lo = data.draw(st.sampled_from(seqs))
        hi = data.draw(st.sampled_from([s for s in seqs if s >= lo]))
        self.wal.ack_range(lo, hi)
        self.acked.update(s for s in range(lo, hi + 1) if s in self.records or s <= max(self.records))

    @rule()
    def rotate(self):
        before = self.wal.counters["compacted_segments"]
        self.wal.rotate()
        self._compacted(before)

    @rule()
    def compact(self):
        before = self.wal.counters["compacted_segments"]
        self.wal.compact()
        self._compacted(before)

    @rule()
    def flush_acks(self):
        self.wal.flush_acks()
        self.persisted = set(self.acked)

    @rule()
    def close_and_reopen(self):
        self.wal.close()
        self.persisted = set(self.acked)
        self.wal = self._open()
        assert self.wal.recovery.clean

    @rule()
    def crash_and_reopen(self):
        copy = self._new_dir()
        # A file-by-file copy is only a state the disk could have been in if no rename runs meanwhile:
        # let the background segment preparer finish first (it only renames files it owns).
        if self.wal._preparer is not None:
            self.wal._preparer.join()
        shutil.copytree(self.path, copy, ignore=shutil.ignore_patterns("LOCK"))
        old = self.wal
        self.path = copy
        self.wal = self._open()
        old.close()
        self.acked = set(self.persisted)     # acks not yet persisted are gone after a crash

    # ------------------------------------------------------------------ invariants
    @invariant()
    def next_seq_is_monotone_and_never_reused(self):
        nxt = self.wal.next_seq
        assert nxt >= self.last_next and nxt > max(self.records, default=0)
        self.last_next = nxt

    @invariant()
    def everything_unacked_is_replayed_exactly(self):
        got = [(s, r) for b in self.wal.replay() for s, r in zip(b.seqs, b.records)]
        want = [(s, self.records[s]) for s in sorted(self.records) if s not in self.acked]
        assert got == want

    @invariant()
    def full_replay_is_a_suffix_of_the_model(self):
        got = [(s, r) for b in self.wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)]
        if not got:
            assert all(s in self.acked for s in self.records)
            return
        first = got[0][0]
        assert got == [(s, self.records[s]) for s in sorted(self.records) if s >= first]
        assert all(s in self.acked for s in self.records if s < first)   # only acked records were compacted

    def teardown(self):
        self.wal.close()
        shutil.rmtree(self.root, ignore_errors=True)


class TestWalStatePure(WalMachine.TestCase):
    settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


class CompiledWalMachine(WalMachine):
    implementation = "compiled"


@pytest.mark.skipif(twins.compiled is None and not require_compiled(), reason="compiled WAL not built")
class TestWalStateCompiled(CompiledWalMachine.TestCase):
    settings = settings(max_examples=25, stateful_step_count=30, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
