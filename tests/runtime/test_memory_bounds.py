"""Real memory with a slow actor (issue 10, "the WAL is the buffer"): with ~1 KB events, queue_depth 50 and
either policy, RssAnon grows by at most 16 MiB while a 60,000-event backlog (about 60 MiB) builds up. With
the default policy on the WAL bus (block) the backlog waits unacked in the log and nothing is dead-lettered;
an explicit drop_oldest sends what it pushes out to dead letters with reason ``backpressure``."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("memory_child.py")
COUNT = 60_000
BOUND_KIB = 16 << 10


def _run(tmp_path, policy):
    proc = subprocess.run([sys.executable, str(CHILD), str(tmp_path / "data"), policy, str(COUNT)],
                          capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"RSS ({out['policy']}): {out}; grew {(out['peak_kib'] - out['base_kib']) / 1024:.1f} MiB")
    return out


@pytest.mark.slow
def test_default_policy_on_the_wal_bus_blocks_and_keeps_rss_flat(tmp_path):
    out = _run(tmp_path, "default")
    assert out["policy"] == "block" and out["published"] == COUNT
    assert out["dead_letters"] == 0                                # no event dead-lettered for backpressure
    assert out["fetched"] < COUNT // 2                            # the backlog waits in the WAL
    assert out["peak_kib"] - out["base_kib"] <= BOUND_KIB


@pytest.mark.slow
def test_explicit_drop_oldest_dead_letters_its_overflow_and_keeps_rss_flat(tmp_path):
    out = _run(tmp_path, "drop_oldest")
    assert out["policy"] == "drop_oldest" and out["published"] == COUNT
    assert out["dead_letters"] > 0 and out["reasons"] == ["backpressure"]
    assert out["peak_kib"] - out["base_kib"] <= BOUND_KIB
