"""Bad bytes and a hostile environment: every case gives a clear error or a documented recovery, never
a hang; no valid record is ever erased or hidden, every unreadable record is counted, and no sequence
number is issued twice.

The exhaustive cases use tiny segments (16 KiB) on both encodings and both twins: every byte of every
header, every record boundary of sealed and active segments, every 4 KiB block, and truncation of sealed
segments at every record boundary. Each test prints how many damage cases it ran (``DAMAGE-CASES``).
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from orgloop.errors import WalCorruptionError, WalError, WalFormatError, WalNewerFormatError
from orgloop.wal import Wal, crc32c, twins
from orgloop.wal.format import FORMAT_VERSION, SegmentHeader, data_start, pack_header, parse_header
from orgloop.wal.segments import list_segments

SEG = 16 << 10
ENCODINGS = ["msgpack", "jsonl"]
SMALL = {"msgpack": 190, "jsonl": 140}    # records (of about 200 bytes) for three segments and a spare
PAD = 150


@pytest.fixture
def scratch(tmp_path):
    """A directory on tmpfs when there is one: the exhaustive cases test recovery logic, not the disk, and
    thousands of reopens with their fsyncs would otherwise dominate the suite's time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="orgloop-damage-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def build(path, impl, n=400, encoding="msgpack", seg=SEG, window=4096, pad=0):
    recs = [b'{"n":%d,"p":"%s"}' % (i, b"z" * (pad + i % 90)) for i in range(n)]
    with Wal(path, segment_size=seg, implementation=impl, encoding=encoding, sync_window=window) as wal:
        wal.append_many(recs)
        end = wal._offset
    return recs, end


def headers(path):
    """``{file name: header}`` of every segment file with a readable header."""
    return {p.name: parse_header(p.read_bytes()[:256], crc32c) for _i, p in list_segments(path)}


def active_segment(path):
    """The segment being appended to (a prepared spare may sort after it)."""
    return [p for _i, p in list_segments(path) if parse_header(p.read_bytes()[:256], crc32c).active][-1]


def read_all(path, impl, append=True):
    """Reopen, replay everything (which also checks sealed segments), append once; returns
    (records by seq, report, stats, seq of the new append or the next seq)."""
    wal = Wal(path, segment_size=SEG, implementation=impl)
    try:
        got = [(s, r) for b in wal.replay(unacked_only=False) for s, r in zip(b.seqs, b.records)]
        stats = wal.stats()
        new = wal.append(b'{"again":1}') if append else wal.next_seq
    finally:
        try:
            wal.close()
        except WalError:
            if append:      # only a full disk (append=False) may keep the close from recording its acks
                raise
    return got, wal.recovery, stats, new


def frame_starts(data: bytes, seg_id: int, enc: int):
    """Offsets of every frame (records and durable marks) in one segment's bytes, in order."""
    core = twins.pure
    pos, out = data_start(enc), []
    while True:
        status, _seq, fs, _p0, _ln = core._frame_at(data, pos, len(data), seg_id, enc)
        if status >= 0:
            return out
        out.append(pos)
        pos += fs


def check_after_damage(recs, got, stats, new, *, durable=True):
    """Every record read back is intact and in order; every missing one is counted; no seq reused."""
    seqs = [s for s, _ in got]
    assert seqs == sorted(set(seqs))
    assert all(r == recs[s - 1] for s, r in got), "a record came back changed"
    missing = set(range(1, len(recs) + 1)) - set(seqs)
    counted = stats["lost_records"] + (0 if durable else stats["torn_records"])
    assert counted == len(missing), f"{len(missing)} records missing, {counted} counted"
    assert new > len(recs), "a sequence number was issued twice"
    return missing


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_byte_of_every_header(scratch, impl, encoding):
    """A damaged header is damage, never "a newer version": the segment's records are recovered from
    their frames (sealed and active), a damaged spare is prepared again, nothing is lost."""
    base = scratch / "base"
    recs, _end = build(base, impl, n=SMALL[encoding], encoding=encoding, pad=PAD)
    files = sorted(headers(base))
    assert sum(h.active for h in headers(base).values()) >= 3 and any(not h.active for h in headers(base).values())
    size = data_start(1 if encoding == "jsonl" else 0)
    cases = 0
    for name in files:
        original = (base / name).read_bytes()
        for i in range(size):
            data = bytearray(original)
            data[i] ^= 0x5A
            with damaged_copy(scratch, base, name, _write(data)) as work:
                got, rec, stats, new = read_all(work, impl)
                assert [s for s, _ in got] == list(range(1, len(recs) + 1)), f"{name} byte {i}"
                check_after_damage(recs, got, stats, new)
                assert rec.lost_records == 0 and any(q.startswith(name) for q in rec.quarantined), (name, i)
            cases += 1
    print(f"DAMAGE-CASES header {impl} {encoding} {cases}")


@contextmanager
def damaged_copy(scratch, base, name, damage):
    """A copy of the log at ``base`` (as ``scratch/w``) whose file ``name`` ``damage(path)`` has changed;
    removed after the block (kept when it fails, to look at)."""
    work = scratch / "w"
    shutil.copytree(base, work, ignore=shutil.ignore_patterns("LOCK"))
    damage(work / name)
    yield work
    shutil.rmtree(work)


def _write(data):
    return lambda path: path.write_bytes(bytes(data))


def _log_with_sealed_and_active(root, impl, encoding):
    base = root / "base"
    recs, _end = build(base, impl, n=SMALL[encoding], encoding=encoding, pad=PAD)
    active = active_segment(base)
    sealed = [p for _i, p in list_segments(base) if p != active and headers(base)[p.name].active]
    return base, recs, sealed, active


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_record_boundary_in_sealed_and_active_segments(scratch, impl, encoding):
    """One damaged frame loses that record only: every valid record after it, in the same segment and
    later ones, is still served, and the loss is counted (the log was closed, so it was durable)."""
    base, recs, sealed, active = _log_with_sealed_and_active(scratch, impl, encoding)
    enc = 1 if encoding == "jsonl" else 0
    cases = 0
    for seg in sealed[-1:] + [active]:
        original = seg.read_bytes()
        h = parse_header(original[:256], crc32c)
        starts = frame_starts(original, h.segment_id, enc)
        assert len(starts) > 5
        for k, pos in enumerate(starts):
            data = bytearray(original)
            data[pos + 9] ^= 0x01             # inside the frame's checksummed bytes (its seq field)
            with damaged_copy(scratch, base, seg.name, _write(data)) as work:
                got, rec, stats, new = read_all(work, impl)
                missing = check_after_damage(recs, got, stats, new)
                assert len(missing) <= 1, f"{seg.name} frame {k}: lost {sorted(missing)}"
                if missing:
                    assert (work / "quarantine").is_dir() and stats["quarantined_segments"] >= 1
                assert max(s for s, _ in got) >= len(recs) - (1 if missing == {len(recs)} else 0)
            cases += 1
    print(f"DAMAGE-CASES boundary {impl} {encoding} {cases}")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_zeroed_4k_blocks_anywhere(scratch, impl, encoding):
    base, recs, sealed, active = _log_with_sealed_and_active(scratch, impl, encoding)
    cases = 0
    for seg in sealed + [active]:
        original = seg.read_bytes()
        for block in range(0, len(original), 4096):
            data = bytearray(original)
            data[block:block + 4096] = bytes(4096)
            with damaged_copy(scratch, base, seg.name, _write(data)) as work:
                got, rec, stats, new = read_all(work, impl)
                missing = check_after_damage(recs, got, stats, new)
                assert len(missing) <= 4096 // 64 + 2
            cases += 1
    print(f"DAMAGE-CASES zeroed-block {impl} {encoding} {cases}")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_truncating_sealed_segments(scratch, impl, encoding):
    base, recs, sealed, _active = _log_with_sealed_and_active(scratch, impl, encoding)
    enc = 1 if encoding == "jsonl" else 0
    cases = 0
    for seg in sealed:
        original = seg.read_bytes()
        h = parse_header(original[:256], crc32c)
        starts = frame_starts(original, h.segment_id, enc)
        for cut in [0, 10] + starts[::3] + [starts[-1] + 5]:
            with damaged_copy(scratch, base, seg.name, lambda path: os.truncate(path, cut)) as work:
                got, rec, stats, new = read_all(work, impl)
                check_after_damage(recs, got, stats, new)
            cases += 1
    print(f"DAMAGE-CASES truncation {impl} {encoding} {cases}")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_cutting_the_active_segment_anywhere(scratch, impl, encoding):
    """A torn tail is all that is erased: cutting a closed log's active segment loses only the records
    cut off, and they are counted (a clean close made them durable), and no seq is issued again."""
    base = scratch / "base"
    recs, end = build(base, impl, n=SMALL[encoding], encoding=encoding, pad=PAD)
    active = active_segment(base)
    first_seq = parse_header(active.read_bytes()[:256], crc32c).first_seq
    assert first_seq > 1                                      # the cuts hit a segment that holds data
    ds = data_start(0 if encoding == "msgpack" else 1)
    cases = 0
    for cut in list(range(ds, end + 1, 104)) + [ds + 3, end - 5, end - 1]:
        def tear(seg):
            data = seg.read_bytes()
            if cut % 2:   # a torn tail in a preallocated file: everything from the cut reads as fill
                seg.write_bytes(data[:cut] + (b"\0" if encoding == "msgpack" else b"\n") * (len(data) - cut))
            else:         # the file itself cut short
                os.truncate(seg, cut)

        with damaged_copy(scratch, base, active.name, tear) as work:
            got, _rec, stats, new = read_all(work, impl)
            missing = check_after_damage(recs, got, stats, new)
            assert missing == set(range(len(recs) - len(missing) + 1, len(recs) + 1))   # a suffix
            assert all(s >= first_seq for s in missing)                                # sealed segments untouched
        cases += 1
    print(f"DAMAGE-CASES active-cut {impl} {encoding} {cases}")


def test_one_flipped_bit_in_the_active_segment_loses_one_record_not_the_rest(tmp_path, impl):
    """The case from the issue: record 101 of 1,000 damaged in the active segment of a closed log."""
    recs = [b'{"n":%d}' % i for i in range(1000)]
    with Wal(tmp_path, segment_size=1 << 20, implementation=impl) as wal:
        wal.append_many(recs)
        wal.ack_range(1, 50)
    seg = active_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[data.index(b'{"n":100}') + 3] ^= 0x01
    seg.write_bytes(bytes(data))
    with Wal(tmp_path, segment_size=1 << 20, implementation=impl) as wal:
        assert wal.recovery.lost_records == 1 and wal.recovery.truncated_bytes == 0
        got = [s for b in wal.replay() for s in b.seqs]
        assert got == [s for s in range(51, 1001) if s != 101]
        assert wal.append(b"x") == 1001
        assert len(list((tmp_path / "quarantine").glob("*.bin"))) == 1
    with Wal(tmp_path, segment_size=1 << 20, implementation=impl) as wal:   # reported once, then quiet
        assert wal.recovery.lost_records == 0 and wal.stats()["lost_records"] == 1


def test_strict_mode_refuses_mid_log_damage_and_changes_nothing(tmp_path, impl):
    recs = [b'{"n":%d}' % i for i in range(300)]
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:
        wal.append_many(recs)
    with Wal(tmp_path, segment_size=SEG, implementation=impl, strict=True) as wal:   # healthy: opens
        assert wal.recovery.clean
    for target in (active_segment(tmp_path), list_segments(tmp_path)[0][1]):
        data = bytearray(target.read_bytes())
        data[data.index(b'{"n":', 200) + 2] ^= 0x01
        target.write_bytes(bytes(data))
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "LOCK"}
        with pytest.raises(WalCorruptionError, match="strict mode refuses"):
            Wal(tmp_path, segment_size=SEG, implementation=impl, strict=True)
        after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name != "LOCK"}
        assert after == before and not (tmp_path / "quarantine").exists()
    with Wal(tmp_path, segment_size=SEG, implementation=impl) as wal:    # the default recovers and counts
        assert len([s for b in wal.replay() for s in b.seqs]) == 298 and wal.stats()["lost_records"] == 2


def test_strict_mode_is_a_filewal_bus_option(tmp_path):
    from orgloop.bus.filewal import FileWalBus, FileWalOptions

    assert FileWalOptions.model_validate({"strict": True}).strict
    with Wal(tmp_path, segment_size=SEG) as wal:
        wal.append_many([b'{"n":%d}' % i for i in range(50)])
    seg = active_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[data.index(b'{"n":20}') + 2] ^= 0x01
    seg.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError):
        FileWalBus(tmp_path, strict=True, segment_size=SEG)


def test_sequence_numbers_are_never_reused_after_losing_the_tail(tmp_path, impl):
    """The issue's case: acks reached 500, then a crash, then the disk lost the tail after record 100.
    New appends must get seqs above every seq ever issued, and replay must still see them."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    wal = Wal(live, segment_size=1 << 20, implementation=impl)
    try:
        wal.append_many([b"r%d" % i for i in range(1000)])
        wal.ack_range(1, 500)
        wal.flush_acks()
        shutil.copytree(live, crashed, ignore=shutil.ignore_patterns("LOCK"))   # the state a crash leaves
    finally:
        wal.close()
    seg = crashed / active_segment(live).name
    data = seg.read_bytes()
    cut = data.index(b"r100") - 24
    seg.write_bytes(data[:cut] + bytes(len(data) - cut))
    with Wal(crashed, segment_size=1 << 20, implementation=impl) as wal:
        new = wal.append_many([b"new1", b"new2"])
        assert new[0] > 1000
        assert [s for b in wal.replay() for s in b.seqs] == list(new)
        assert wal.recovery.skipped_seqs > 0


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
        got, rec, stats, _new = read_all(work, impl)
        lost = set(range(1, 601)) - {s for s, _ in got}
        assert all(r == recs[s - 1] for s, r in got)
        if not lost:   # the flip hit a record's zero padding, which holds no data: nothing to lose
            assert stats["lost_records"] == 0 and len(got) == 600
            continue
        damaged_runs += 1
        assert len(lost) <= 2, f"seed {seed}: lost {sorted(lost)}"
        assert sorted(lost) == list(range(min(lost), max(lost) + 1))   # one contiguous range
        assert stats["lost_records"] == len(lost)
        assert list((work / "quarantine").glob(sealed.name + ".*.bin.json"))
        again, _rec2, stats2, _ = read_all(work, impl)       # reported once, then quiet: never counted again
        assert again == got + [(601, b'{"again":1}')] and stats2["lost_records"] == len(lost)
    assert damaged_runs >= 4


def test_a_zeroed_sector_in_the_middle_is_contained(tmp_path, impl):
    recs, _ = build(tmp_path, impl, n=600)
    sealed = list_segments(tmp_path)[0][1]
    data = bytearray(sealed.read_bytes())
    data[4096:4608] = bytes(512)
    sealed.write_bytes(bytes(data))
    got, rec, stats, _ = read_all(tmp_path, impl)
    lost = set(range(1, 601)) - {s for s, _ in got}
    assert 0 < len(lost) <= 512 // 40 + 2 and stats["lost_records"] == len(lost)   # records here are >= 40 bytes
    assert sorted(lost) == list(range(min(lost), max(lost) + 1))
    assert all(r == recs[s - 1] for s, r in got)


def test_garbage_files_in_the_directory(tmp_path, impl):
    recs, _ = build(tmp_path, impl)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "0000000000000099.wal").write_bytes(os.urandom(SEG))
    (tmp_path / "0000000000000077.wal.tmp").write_bytes(b"half-prepared")
    (tmp_path / "zzzz.wal").write_bytes(b"not a segment name")
    got, rec, stats, new = read_all(tmp_path, impl)
    assert len(got) == 400 and new == 401 and stats["lost_records"] == 0
    assert (tmp_path / "quarantine" / "0000000000000099.wal.0.bin").exists()      # its header, for forensics
    assert not (tmp_path / "0000000000000099.wal").exists()                        # a spare, prepared again
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
    with pytest.raises(WalNewerFormatError, match="upgrade orgloop"):
        Wal(tmp_path, implementation=impl)
    assert seg.read_bytes() == before                    # nothing changed on disk
    data = bytearray(before)
    data[8] ^= 0x02                                      # a damaged version field (its checksum fails)
    seg.write_bytes(bytes(data))
    with Wal(tmp_path, implementation=impl) as wal:      # damage, not a newer version: recovered
        assert wal.recovery.lost_records == 0 and wal.next_seq == 401


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


def _check_full(tmp_path, impl, proc, expected: str, reason: str, append: bool = True) -> None:
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert expected in out and reason in out and "AGAIN" in out, out
    acked = int(out.split("ACKED ")[1].split()[0])
    assert acked > 100
    got, _rec, stats, new = read_all(tmp_path, impl, append=append)
    assert [s for s, _ in got] == list(range(1, acked + 1)) and new > acked and stats["lost_records"] == 0
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
def tiny_fs(tmp_path, mounts):
    """A 192 KiB tmpfs (the ``mounts`` fixture: as root a failed mount fails the test, and the mount is
    always lazily unmounted, so a busy file system never outlives the test)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounts("tmpfs", mnt, "192k")
    return mnt


def test_a_full_disk_fails_clearly_and_keeps_every_acknowledged_record(tiny_fs, impl):
    log = tiny_fs / "log"
    proc = _child(f"""
        from orgloop.wal import Wal
        from orgloop.errors import WalError
        wal = Wal({str(log)!r}, segment_size={32 << 10})
        {FILL_UNTIL_ERROR.strip()}
        wal.close()
    """.replace("\n        ", "\n"), impl)
    _check_full(log, impl, proc, "ERROR cannot create WAL segment", "No space left on device", append=False)


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
