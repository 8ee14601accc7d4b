"""``orgloop wal`` on both twins: clean logs, damage (exit 4), odd directories (exit 1, never a traceback)."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from orgloop.cli import main
from orgloop.wal import Wal, implementation
from orgloop.wal import twins as wal_twins


@pytest.fixture
def live(impl, monkeypatch):
    """Make ``impl`` the live twin, which the offline tools and ``repair`` use."""
    monkeypatch.setattr(wal_twins, "active", wal_twins.get(impl))
    assert implementation() == impl
    return impl


def run(*args):
    """The CLI in-process; an exception escaping it would be a traceback for the user, so it fails here."""
    result = CliRunner().invoke(main, ["wal", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def _make_log(path, impl, n=600):
    with Wal(path, segment_size=16 << 10, implementation=impl) as wal:
        wal.append_events([{"n": i, "blob": b"\x00\x01"} for i in range(n)])
        wal.ack_range(1, 10)
    return sorted(path.glob("*.wal"))


def test_verify_inspect_stats_export_on_a_clean_log(tmp_path, live):
    _make_log(tmp_path, live)
    runner = CliRunner()
    r = runner.invoke(main, ["wal", "verify", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] and report["records"] == 600
    r = runner.invoke(main, ["wal", "inspect", str(tmp_path)])
    assert r.exit_code == 0 and "sealed" in r.output and "active" in r.output
    r = runner.invoke(main, ["wal", "stats", str(tmp_path), "--json"])
    stats = json.loads(r.output)
    assert stats["acked_watermark"] == 10 and stats["encoding"] == "msgpack"
    out = tmp_path / "export.jsonl"
    r = runner.invoke(main, ["wal", "export", str(tmp_path), "--out", str(out), "--unacked-only"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["seq"] for x in lines] == list(range(11, 601))
    assert lines[0]["event"] == {"n": 10, "blob": {"$base64": "AAE="}}


def test_verify_and_export_exit_4_on_damage_naming_seqs_and_repair_records_it(tmp_path, live):
    segs = _make_log(tmp_path, live)
    with open(segs[0], "r+b") as f:      # flip a byte inside a record of the first (sealed) segment
        f.seek(2000)
        b = f.read(1)
        f.seek(2000)
        f.write(bytes([b[0] ^ 0x5A]))
    runner = CliRunner()
    r = runner.invoke(main, ["wal", "verify", str(tmp_path), "--json"])
    assert r.exit_code == 4
    report = json.loads(r.stdout)
    assert not report["ok"] and report["damage"][0]["kind"] == "gap"
    bad = report["damage"][0]
    out = tmp_path / "export.jsonl"
    r = runner.invoke(main, ["wal", "export", str(tmp_path), "--out", str(out)])
    assert r.exit_code == 4 and f"(seqs {bad['first_seq']}..{bad['last_seq']})" in r.stderr, r.stderr
    seqs = [json.loads(line)["seq"] for line in out.read_text().splitlines()]
    assert seqs == [s for s in range(1, 601) if not bad["first_seq"] <= s <= bad["last_seq"]]
    r = runner.invoke(main, ["wal", "repair", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    copy = f"{segs[0].name}.{bad['offset']:x}.bin"       # the damaged bytes, copied for forensics
    assert result["lost_records"] == 1 and result["quarantined"] == [copy]
    assert (tmp_path / "quarantine" / (copy + ".json")).exists()


def test_not_a_wal_directory_exits_1_and_usage_errors_64(tmp_path):
    r = run("verify", tmp_path)
    assert r.exit_code == 1 and "does not look like an orgloop WAL" in r.output
    assert run("verify", tmp_path / "missing").exit_code == 64
    assert run("export", tmp_path, "--from-seq", "0").exit_code == 64


@pytest.mark.parametrize("command", ["verify", "inspect", "stats", "export", "repair"])
def test_odd_directories_give_one_clear_line_and_exit_1(tmp_path, live, command):
    odd = {}
    for name in ("quarantine-file", "checkpoint-file", "damaged-checkpoint", "newer-version"):
        odd[name] = tmp_path / name
        _make_log(odd[name], live, n=100)
    (odd["quarantine-file"] / "quarantine").write_text("x")
    os.rename(odd["checkpoint-file"] / "checkpoint", odd["checkpoint-file"] / "cp.old")
    (odd["checkpoint-file"] / "checkpoint").write_text("x")
    (odd["damaged-checkpoint"] / "checkpoint" / "data.mdb").write_bytes(os.urandom(8192))
    from orgloop.wal import crc32c
    from orgloop.wal.format import FORMAT_VERSION, pack_header, parse_header

    seg = sorted(odd["newer-version"].glob("*.wal"))[0]
    data = seg.read_bytes()
    h = parse_header(data[:64], crc32c)
    seg.write_bytes(pack_header(dataclasses.replace(h, version=FORMAT_VERSION + 1), crc32c) + data[64:])
    for name, path in odd.items():
        r = run(command, path)
        assert r.exit_code in (0, 1), (name, r.output)
        if r.exit_code == 1:
            assert r.output.startswith("Error: ") and "Traceback" not in r.output, (name, r.output)
        if name == "newer-version":
            assert r.exit_code == 1 and "upgrade orgloop" in r.output
        if command == "stats" and name == "damaged-checkpoint":
            assert r.exit_code == 0 and "checkpoint_error" in r.output and "orgloop wal repair" in r.output
        if command == "repair" and name in ("quarantine-file", "checkpoint-file"):
            assert r.exit_code == 1 and "move that file out" in r.output


def test_jsonl_records_that_are_not_json_are_damage_for_verify_and_export(tmp_path, live):
    with Wal(tmp_path, encoding="jsonl", segment_size=16 << 10, implementation=live) as wal:
        wal.append_events([{"n": 0}, {"n": 1}])
        with pytest.raises(ValueError, match="record 0 not UTF-8"):
            wal.append(b'{"n":\xff}')
        wal._append([b'{"n":\xff}'])      # as a log written before appends were checked holds it
        wal.append_events([{"n": 3}, {"n": 4}])
    r = CliRunner().invoke(main, ["wal", "verify", str(tmp_path), "--json"])
    assert r.exit_code == 4, r.output
    report = json.loads(r.stdout)
    assert [(d["kind"], d["first_seq"], d["last_seq"]) for d in report["damage"]] == [("invalid_json", 3, 3)]
    r = CliRunner().invoke(main, ["wal", "export", str(tmp_path)])
    assert r.exit_code == 4 and "invalid_json" in r.stderr and "(seqs 3..3)" in r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]          # every line of the export is JSON
    assert [x["seq"] for x in lines] == [1, 2, 3, 4, 5] and "$raw" in lines[2]["event"]


def test_demo_kills_a_child_and_recovers(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orgloop", "demo", "--dir", str(tmp_path / "d"), "--seconds",
                           "0.5", "--threads", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every acknowledged record survived" in proc.stdout


def test_version_names_the_live_implementations():
    r = CliRunner().invoke(main, ["version"])
    assert r.exit_code == 0 and "wal=" in r.output
