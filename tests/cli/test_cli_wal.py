import json
import subprocess
import sys

from click.testing import CliRunner

from orgloop.cli import main
from orgloop.wal import Wal


def _make_log(path, impl="compiled", n=600):
    with Wal(path, segment_size=16 << 10, implementation=impl) as wal:
        wal.append_events([{"n": i, "blob": b"\x00\x01"} for i in range(n)])
        wal.ack_range(1, 10)
    return sorted(path.glob("*.wal"))


def test_verify_inspect_stats_export_on_a_clean_log(tmp_path):
    _make_log(tmp_path)
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


def test_verify_exits_4_on_damage_and_repair_records_it(tmp_path):
    segs = _make_log(tmp_path)
    with open(segs[0], "r+b") as f:      # flip a byte inside a record of the first (sealed) segment
        f.seek(2000)
        b = f.read(1)
        f.seek(2000)
        f.write(bytes([b[0] ^ 0x5A]))
    runner = CliRunner()
    r = runner.invoke(main, ["wal", "verify", str(tmp_path), "--json"])
    assert r.exit_code == 4
    report = json.loads(r.output)
    assert not report["ok"] and report["damage"][0]["kind"] == "lost_range"
    r = runner.invoke(main, ["wal", "repair", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["lost_records"] == 1 and result["quarantined"] == [segs[0].name]
    assert (tmp_path / "quarantine" / (segs[0].name + ".json")).exists()


def test_not_a_wal_directory_exits_1(tmp_path):
    r = CliRunner().invoke(main, ["wal", "verify", str(tmp_path)])
    assert r.exit_code == 1 and "does not look like an orgloop WAL" in r.output


def test_demo_kills_a_child_and_recovers(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "orgloop", "demo", "--dir", str(tmp_path / "d"), "--seconds",
                           "0.5", "--threads", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "every acknowledged record survived" in proc.stdout


def test_version_names_the_live_implementations():
    r = CliRunner().invoke(main, ["version"])
    assert r.exit_code == 0 and "wal=" in r.output
