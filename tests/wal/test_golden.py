"""Logs written by every format version (tests/golden/, made by make_golden.py) must read back exactly,
with both twins, forever: an upgrade never discards what an earlier release wrote."""
import shutil
import sys
from pathlib import Path

import pytest

from orgloop.wal import Wal
from orgloop.wal import tools

GOLDEN = Path(__file__).parent.parent / "golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import records  # noqa: E402


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("encoding", ["msgpack", "jsonl"])
def test_golden_logs_read_back_exactly(tmp_path, impl, encoding, version):
    src = GOLDEN / f"wal-v{version}-{encoding}"
    work = tmp_path / "log"
    shutil.copytree(src, work)
    expected = records()
    if encoding == "jsonl":
        for e in expected:
            e["payload"]["blob"] = list(e["payload"]["blob"])
    assert tools.verify(work).ok
    with Wal(work, implementation=impl) as wal:
        assert wal.recovery.clean and wal.encoding == encoding and wal.next_seq == 301
        full = [(s, e) for b in wal.replay(unacked_only=False, decode=True) for s, e in zip(b.seqs, b.records)]
        assert full == [(i + 1, expected[i]) for i in range(300)]
        unacked = [s for b in wal.replay() for s in b.seqs]
        assert unacked == [s for s in range(51, 301) if s != 60]
        assert wal.append_event({"after": "upgrade"}) == 301
