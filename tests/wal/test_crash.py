"""Real crashes: a child appending with sync=always from several threads is SIGKILLed, then the log
is reopened and every record the child was told is durable must be there, intact, in order.

Rounds continue in the same directory, so recovery of torn tails runs again and again. The fault
points (ORGLOOP_WAL_FAULT) kill the child between specific syscalls.
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from orgloop.wal import Wal

from .crash_child import payload

CHILD = Path(__file__).with_name("crash_child.py")
SEGMENT = 64 << 10
pytestmark = pytest.mark.crash


def run_child(directory: Path, impl: str, round_: int, *, kill_after: float | None, fault: str | None = None,
              threads: int = 4, limit: float = 8.0, ack_all: bool = False
              ) -> tuple[dict[int, tuple[int, int, int]], set[int], set[int], int, str]:
    """Run one child until killed; returns (acknowledged seq -> (round, thread, index), acked seqs, seqs it
    set out to ack (a kill may land between an ack and its report), rc, stderr). ``kill_after`` counts from the moment the child reports it is ready (a loaded machine
    may take long to start a Python process)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("ORGLOOP_WAL_FAULT", None)
    if impl == "pure":
        env["ORGLOOP_PUREPYTHON"] = "1"
        env.pop("ORGLOOP_REQUIRE_COMPILED", None)
    if fault:
        env["ORGLOOP_WAL_FAULT"] = fault
    args = [sys.executable, str(CHILD), str(directory), str(threads), str(SEGMENT), str(round_)]
    proc = subprocess.Popen(args + (["all"] if ack_all else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    durable: dict[int, tuple[int, int, int]] = {}
    acked: set[int] = set()
    meant: set[int] = set()
    ready = threading.Event()
    err: list[str] = []

    def reader():
        for line in proc.stdout:
            parts = line.split()
            if parts[0] == "ack":
                acked.add(int(parts[1]))
            elif parts[0] == "acking":
                meant.add(int(parts[1]))
            elif parts[0] == "ready":
                ready.set()
            else:
                durable[int(parts[0])] = (round_, int(parts[1]), int(parts[2]))

    def err_reader():
        err.append(proc.stderr.read())

    threads_ = [threading.Thread(target=reader, daemon=True), threading.Thread(target=err_reader, daemon=True)]
    for t in threads_:
        t.start()
    deadline = time.monotonic() + limit
    if kill_after is not None:
        ready.wait(timeout=limit)
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for t in threads_:
        t.join(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    return durable, acked, meant, proc.returncode, "".join(err)


def check(directory: Path, impl: str, durable: dict, acked_all: set, meant_all: set) -> Wal:
    """Reopen and verify: every acknowledged, not-acked record is present and intact; seqs unique, ordered;
    and every record the child never set out to ack is still unacked (no ack is invented: the durable
    marks carry the ack watermark, and the next open takes it)."""
    wal = Wal(directory, segment_size=SEGMENT, implementation=impl)
    seen = {}
    last = 0
    for batch in wal.replay(unacked_only=False):
        for seq, rec in zip(batch.seqs, batch.records):
            assert seq > last, "sequence numbers must be strictly increasing"
            last = seq
            seen[seq] = rec
    for seq, (round_, thread, i) in durable.items():
        if seq in acked_all and seq not in seen:
            continue                          # acked: compaction may have removed it
        assert seq in seen, f"acknowledged seq {seq} lost"
        assert seen[seq] == payload(round_, thread, i), f"seq {seq} damaged"
    assert wal.recovery.lost_records == 0
    unacked = {s for b in wal.replay() for s in b.seqs}
    invented = sorted(s for s in durable if s not in meant_all and s not in unacked)
    assert not invented, f"records never acked are counted as acked: {invented[:10]}"
    return wal


def test_sigkill_at_random_moments_loses_nothing_acknowledged(tmp_path, impl):
    rng = random.Random(1234 if impl == "compiled" else 4321)
    durable_all: dict = {}
    acked_all: set = set()
    meant_all: set = set()
    for round_ in range(8):
        durable, acked, meant, rc, _err = run_child(tmp_path, impl, round_, kill_after=rng.uniform(0.2, 0.6),
                                                    ack_all=round_ % 2 == 1)
        assert rc == -signal.SIGKILL
        assert not (set(durable) & set(durable_all)), "a sequence number was reused after a crash"
        durable_all.update(durable)
        acked_all |= acked
        meant_all |= meant
        wal = check(tmp_path, impl, durable_all, acked_all, meant_all)
        wal.close()
    assert len(durable_all) > 200, "the children should have made real progress"


@pytest.mark.parametrize("fault", ["after_write:40", "after_seal:1", "after_seal:3", "after_checkpoint:1",
                                   "after_prepare:2"])
def test_sigkill_between_syscalls(tmp_path, impl, fault):
    point = fault.split(":")[0]
    durable, acked, meant, rc, err = run_child(tmp_path, impl, 0, kill_after=None, fault=fault, limit=30.0,
                                               ack_all=point == "after_checkpoint")
    assert f"ORGLOOP-WAL-FAULT {point}" in err, f"the fault point {point} was never reached: {err[-2000:]}"
    assert rc == -signal.SIGKILL
    wal = check(tmp_path, impl, durable, acked, meant)
    more = wal.append_many([b"after", b"restart"])        # the log keeps working after recovery
    assert more[0] > max(durable, default=0)
    wal.close()
    durable2, acked2, meant2, rc2, _err = run_child(tmp_path, impl, 1, kill_after=0.6, ack_all=True)
    assert rc2 == -signal.SIGKILL
    check(tmp_path, impl, {**durable, **durable2}, acked | acked2, meant | meant2).close()
