"""Bad bytes and a hostile environment: every case gives a clear error or a documented recovery, never
a hang, and never loses a record that was acknowledged (and not acked) before the damage."""
import os
import random
import shutil
import subprocess
import sys
import textwrap

import pytest

from orgloop.errors import WalError, WalFormatError
from orgloop.wal import Wal
from orgloop.wal.format import FORMAT_VERSION, SegmentHeader, data_start, pack_header, parse_header
from orgloop.wal.segments import list_segments

SEG = 16 << 10


def build(path, impl, n=400, encoding="msgpack", seg=SEG, window=4096):
    recs = [b'{"n":%d,"p":"%s"}' % (i, b"z" * (i % 90)) for i in range(n)]
    with Wal(path, segment_size=seg, implementation=impl, encoding=encoding, sync_window=window) as wal:
        wal.append_many(recs)
        end = wal._offset
    return recs, end


def active_segment(path):
    """The segment being appended to (a prepared spare may sort after it)."""
    from orgloop.wal import crc32c

    return [p for _i, p in list_segments(path) if parse_header(p.read_bytes()[:256], crc32c).active][-1]


def read_all(path, impl):
    with Wal(path, segment_size=SEG, implementation=impl) as wal:
        got = [(s, r) for b in wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)]
        return got, wal.recovery, wal.next_seq


@pytest.mark.parametrize("encoding", ["msgpack", "jsonl"])
def test_cutting_the_active_segment_anywhere_keeps_every_whole_record(tmp_path, impl, encoding):
    base = tmp_path / "base"
    recs, end = build(base, impl, n=215, encoding=encoding)
    active = active_segment(base)
    from orgloop.wal import crc32c

    first_seq = parse_header(active.read_bytes()[:256], crc32c).first_seq
    assert first_seq > 1                                      # the cuts hit a segment that holds data
    ds = data_start(0 if encoding == "msgpack" else 1)
    offsets = list(range(ds, end + 1, 8)) + [ds + 3, end - 5, end - 1]
    for cut in offsets:
        work = tmp_path / f"cut{cut}"
        shutil.copytree(base, work, ignore=shutil.ignore_patterns("LOCK"))
        seg = work / active.name
        data = seg.read_bytes()
        mode = cut % 2
        if mode:   # a torn tail in a preallocated file: everything from the cut reads as fill
            seg.write_bytes(data[:cut] + (b"\0" if encoding == "msgpack" else b"\n") * (len(data) - cut))
        else:      # the file itself cut short
            os.truncate(seg, cut)
        got, _rec, nxt = read_all(work, impl)
        seqs = [s for s, _ in got]
        assert seqs == list(range(1, nxt))                    # contiguous, nothing invented
        assert [r for _, r in got] == recs[: nxt - 1]         # intact
        assert nxt - 1 >= first_seq - 1                       # sealed segments untouched
        with Wal(work, segment_size=SEG, implementation=impl) as wal:   # and it keeps working
            assert wal.append(b'{"again":1}') == nxt
        shutil.rmtree(work)


def test_bit_flips_in_a_sealed_segment_lose_only_the_damaged_records(tmp_path, impl):
    damaged_runs = 0
    for seed in range(6):
        work = tmp_path / f"s{seed}"
        recs, _end = build(work, impl, n=600)
        sealed = list_segments(work)[0][1]
        rng = random.Random(seed)
        data = bytearray(sealed.read_bytes())
        pos = rng.randrange(200, 8000)
        data[pos] ^= 1 << rng.randrange(8)
        sealed.write_bytes(bytes(data))
        got, rec, _nxt = read_all(work, impl)
        lost = set(range(1, 601)) - {s for s, _ in got}
        assert all(r == recs[s - 1] for s, r in got)
        if not lost:   # the flip hit a record's zero padding, which holds no data: nothing to lose
            assert rec.clean and len(got) == 600
            continue
        damaged_runs += 1
        assert len(lost) <= 2, f"seed {seed}: lost {sorted(lost)}"
        assert sorted(lost) == list(range(min(lost), max(lost) + 1))   # one contiguous range
        assert rec.lost_records == len(lost) and rec.quarantined == [sealed.name]
        assert (work / "quarantine" / (sealed.name + ".json")).exists()
        again, rec2, _ = read_all(work, impl)                # reported once, then quiet: never re-quarantined
        assert again == got and rec2.lost_records == 0 and rec2.quarantined == []
    assert damaged_runs >= 4


def test_a_zeroed_sector_in_the_middle_is_contained(tmp_path, impl):
    recs, _ = build(tmp_path, impl, n=600)
    sealed = list_segments(tmp_path)[0][1]
    data = bytearray(sealed.read_bytes())
    data[4096:4608] = bytes(512)
    sealed.write_bytes(bytes(data))
    got, rec, _ = read_all(tmp_path, impl)
    lost = set(range(1, 601)) - {s for s, _ in got}
    assert 0 < len(lost) <= 512 // 40 + 2 and rec.lost_records == len(lost)   # records here are >= 40 bytes
    assert sorted(lost) == list(range(min(lost), max(lost) + 1))
    assert all(r == recs[s - 1] for s, r in got)


def test_damage_in_the_active_segment_beyond_the_sync_window_is_corruption_not_a_torn_tail(tmp_path, impl):
    recs, end = build(tmp_path, impl, n=150, seg=64 << 10, window=4096)
    active = active_segment(tmp_path)
    data = bytearray(active.read_bytes())
    hit = data.index(b'{"n":10,')
    data[hit + 3] ^= 0xFF                              # a payload byte early in the segment, far before the end
    active.write_bytes(bytes(data))
    got, rec, nxt = read_all(tmp_path, impl)
    assert nxt == 151                                  # the tail after the damage was kept
    assert 1 <= rec.lost_records <= 2 and len(got) == 150 - rec.lost_records


def test_garbage_files_in_the_directory(tmp_path, impl):
    build(tmp_path, impl)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "0000000000000099.wal").write_bytes(os.urandom(SEG))
    (tmp_path / "0000000000000077.wal.tmp").write_bytes(b"half-prepared")
    (tmp_path / "zzzz.wal").write_bytes(b"not a segment name")
    got, rec, nxt = read_all(tmp_path, impl)
    assert len(got) == 400 and nxt == 401
    assert "0000000000000099.wal" in rec.quarantined and (tmp_path / "quarantine" / "0000000000000099.wal").exists()
    assert not (tmp_path / "0000000000000077.wal.tmp").exists() and (tmp_path / "notes.txt").exists()


def test_a_segment_from_a_newer_format_version_is_refused_clearly(tmp_path, impl):
    build(tmp_path, impl)
    from orgloop.wal import crc32c

    seg = list_segments(tmp_path)[0][1]
    data = seg.read_bytes()
    h = parse_header(data[:64], crc32c)
    newer = SegmentHeader(FORMAT_VERSION + 1, h.encoding, h.segment_id, h.first_seq, h.capacity, h.created_ns,
                          h.sync_window)
    seg.write_bytes(pack_header(newer, crc32c) + data[64:])
    before = seg.read_bytes()
    with pytest.raises(WalFormatError, match="upgrade orgloop"):
        Wal(tmp_path, implementation=impl)
    assert seg.read_bytes() == before                    # nothing changed on disk


def _child(code: str, impl: str):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if impl == "pure":
        env["ORGLOOP_PUREPYTHON"] = "1"
        env.pop("ORGLOOP_REQUIRE_COMPILED", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=60)


FILL_UNTIL_ERROR = """
        acked = 0
        for i in range(100000):
            try:
                acked = wal.append(b"record %d " % i + b"x" * 100)
            except WalError as exc:
                print("ERROR", exc)
                print("ACKED", acked)
                try:
                    wal.append(b"record %d " % i + b"x" * 100)
                except WalError as exc2:
                    print("AGAIN", exc2)
                break
"""


def _check_full(tmp_path, impl, proc, expected: str, reason: str) -> None:
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert expected in out and reason in out and "AGAIN" in out, out
    acked = int(out.split("ACKED ")[1].split()[0])
    assert acked > 100
    got, _rec, nxt = read_all(tmp_path, impl)
    assert [s for s, _ in got] == list(range(1, acked + 1)) and nxt == acked + 1
    assert got[-1][1].startswith(b"record %d " % (acked - 1))


def test_a_write_past_the_file_size_limit_fails_clearly_and_keeps_every_acknowledged_record(tmp_path, impl):
    # RLIMIT_FSIZE below the segment size (Python ignores SIGXFSZ, so the write fails with EFBIG).
    Wal(tmp_path, segment_size=64 << 10, implementation=impl).close()
    proc = _child(f"""
        import resource
        from orgloop.wal import Wal
        from orgloop.errors import WalError
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 << 10, 48 << 10))
        wal = Wal({str(tmp_path)!r}, segment_size={64 << 10})
        {FILL_UNTIL_ERROR.strip()}
    """.replace("\n        ", "\n"), impl)
    _check_full(tmp_path, impl, proc, "ERROR WAL write failed", "File too large")


@pytest.fixture
def tiny_fs(tmp_path):
    """A 192 KiB tmpfs (needs root to mount)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_fails_clearly_and_keeps_every_acknowledged_record(tiny_fs, impl):
    log = tiny_fs / "log"
    proc = _child(f"""
        from orgloop.wal import Wal
        from orgloop.errors import WalError
        wal = Wal({str(log)!r}, segment_size={32 << 10})
        {FILL_UNTIL_ERROR.strip()}
        wal.close()
    """.replace("\n        ", "\n"), impl)
    _check_full(log, impl, proc, "ERROR cannot create WAL segment", "No space left on device")


def test_permission_errors_are_clear(tmp_path, impl):
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    build(tmp_path / "log", impl)
    os.chmod(tmp_path, 0o755)
    proc = _child(f"""
        import os
        from orgloop.wal import Wal
        from orgloop.errors import WalError
        os.setgid(65534); os.setuid(65534)
        for path in ({str(tmp_path / "log")!r}, {str(tmp_path / "new")!r}):
            try:
                Wal(path)
            except WalError as exc:
                print("CLEAR", exc)
    """, impl)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all("Permission denied" in line for line in lines), proc.stdout
