"""Build the golden WAL directories of the current format version (run once per format version; commit the
result, and keep the directories of earlier versions as they are).

    python tests/golden/make_golden.py

Every later orgloop must read these exactly (tests/wal/test_golden.py).
"""
import shutil
import sys
from pathlib import Path

from orgloop.wal import Wal
from orgloop.wal.format import FORMAT_VERSION

HERE = Path(__file__).parent


def records() -> list[dict]:
    return [{"id": f"evt_{i:016x}", "source": "golden", "type": "resource.changed",
             "payload": {"n": i, "text": "ü\n" * (i % 7), "blob": bytes(range(i % 5))}} for i in range(300)]


def main() -> None:
    for encoding in ("msgpack", "jsonl"):
        target = HERE / f"wal-v{FORMAT_VERSION}-{encoding}"
        shutil.rmtree(target, ignore_errors=True)
        events = records()
        if encoding == "jsonl":   # JSON has no bytes: keep the same shape with a list
            for e in events:
                e["payload"]["blob"] = list(e["payload"]["blob"])
        with Wal(target, encoding=encoding, segment_size=16 << 10) as wal:
            wal.append_events(events[:200])
            for e in events[200:]:
                wal.append_event(e)
            wal.ack_range(1, 50)
            wal.ack(60)
        (target / "LOCK").unlink()
        (target / "checkpoint" / "lock.mdb").unlink(missing_ok=True)
    print("written", file=sys.stderr)


if __name__ == "__main__":
    main()
