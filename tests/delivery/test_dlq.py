import json
import subprocess
import sys

from click.testing import CliRunner

from orgloop.cli import main
from orgloop.delivery.dlq import REDELIVER_TYPE, DeadLetterStore, dead_letter, read_dead_letters
from orgloop.event import new_event
from orgloop.wal import Wal


def _fill(data_dir, n=5, impl=None):
    with DeadLetterStore(data_dir / "dlq", implementation=impl) as store:
        ids = store.add_many([dead_letter(new_event("s", "resource.changed", {"n": i}), route="r1", actor="a",
                                          reason="gave_up", error="exit 3", attempts=3) for i in range(n)])
    return list(ids)


def test_store_add_list_remove_replay_purge(tmp_path, impl):
    ids = _fill(tmp_path, impl=impl)
    with DeadLetterStore(tmp_path / "dlq", implementation=impl) as store:
        assert [s for s, _ in store.entries()] == ids and store.count() == 5
        store.remove(ids[:2])
        published = []
        assert store.replay(published.extend, ids=[ids[3], 999]) == [ids[3]]
        # a redelivery record: that route only, the event as it was recorded
        assert [(e["type"], e["payload"]["route"], e["payload"]["event"]["payload"]["n"]) for e in published] \
            == [(REDELIVER_TYPE, "r1", 3)]
        assert [s for s, _ in store.entries()] == [ids[2], ids[4]]
        assert store.purge() == 2 and list(store.entries()) == []
    assert list(read_dead_letters(tmp_path / "dlq")) == []


def test_cli_list_show_replay_purge(tmp_path):
    ids = _fill(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["dlq", "list", "--data-dir", str(tmp_path), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [x["id"] for x in rows] == ids and rows[0]["reason"] == "gave_up"
    r = runner.invoke(main, ["dlq", "show", "--data-dir", str(tmp_path), str(ids[1]), "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["event"]["payload"] == {"n": 1}
    assert runner.invoke(main, ["dlq", "show", "--data-dir", str(tmp_path), "999"]).exit_code == 1
    r = runner.invoke(main, ["dlq", "replay", "--data-dir", str(tmp_path), str(ids[0])])
    assert r.exit_code == 1 and "no bus log" in r.output         # no filewal bus here: nowhere to write
    Wal(tmp_path / "wal").close()                                 # the bus log a filewal runtime leaves
    r = runner.invoke(main, ["dlq", "replay", "--data-dir", str(tmp_path), str(ids[0]), str(ids[2]), "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.output) == {"replayed": [ids[0], ids[2]], "not_found": [],
                                                          "via": "store"}, r.output
    with Wal(tmp_path / "wal") as wal:   # redeliveries of the events are on the bus's WAL
        assert [e["payload"]["event"]["payload"]["n"] for b in wal.replay(decode=True) for e in b.records] == [0, 2]
    r = runner.invoke(main, ["dlq", "purge", "--data-dir", str(tmp_path), "--yes"])
    assert r.exit_code == 0 and "purged 3" in r.output
    assert runner.invoke(main, ["dlq", "replay", "--data-dir", str(tmp_path)]).exit_code == 64
    assert runner.invoke(main, ["dlq", "replay", "--data-dir", str(tmp_path), "--all", "1"]).exit_code == 64
    r = runner.invoke(main, ["dlq", "replay", "--data-dir", str(tmp_path), "12345"])
    assert r.exit_code == 1 and "replayed 0" in r.output and "no dead letter with id 12345" in r.output


def test_cli_refuses_to_write_while_the_store_is_open(tmp_path):
    _fill(tmp_path)
    with DeadLetterStore(tmp_path / "dlq"):
        r = CliRunner().invoke(main, ["dlq", "purge", "--data-dir", str(tmp_path), "--yes"])
        assert r.exit_code == 1 and "in use" in r.output
        # another process may read while the store is open (py-lmdb allows one handle per process)
        proc = subprocess.run([sys.executable, "-m", "orgloop", "dlq", "list", "--data-dir", str(tmp_path), "--json"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 5


def test_offline_replay_writes_to_the_projects_filewal_log_and_refuses_another_bus(tmp_path, monkeypatch):
    """With the runtime stopped, replay goes to the log the project's bus reads (its bus_options.path), and a
    project on another bus is refused with its dead letters kept (writing a filewal log there would lose them)."""
    import shutil

    from orgloop.config.loader import load_project
    from support.projects import STARTER

    monkeypatch.setenv("ORGLOOP_HOME", str(tmp_path / "home"))
    project = tmp_path / "proj"
    shutil.copytree(STARTER, project)
    settings = project / "orgloop.yaml"
    base = settings.read_text()
    buslog = tmp_path / "elsewhere" / "buslog"
    settings.write_text(base + f"runtime:\n  bus: filewal\n  bus_options:\n    path: {buslog}\n    encoding: jsonl\n")
    data_dir = load_project(project).data_dir
    ids = _fill(data_dir, n=3)
    Wal(data_dir / "wal").close()                # a stale default log: not the one this project's bus reads
    Wal(buslog, encoding="jsonl").close()
    runner = CliRunner()
    r = runner.invoke(main, ["dlq", "replay", "-p", str(project), str(ids[0]), "-o", "json"])
    assert r.exit_code == 0 and json.loads(r.output)["replayed"] == [ids[0]], r.output
    with Wal(buslog) as wal:
        assert [e["payload"]["dead_letter"] for b in wal.replay(decode=True) for e in b.records] == [ids[0]]
    with Wal(data_dir / "wal") as wal:
        assert list(wal.replay()) == []
    settings.write_text(base + "runtime:\n  bus: redis\n")
    r = runner.invoke(main, ["dlq", "replay", "-p", str(project), "--all"])
    assert r.exit_code == 1 and "bus is redis" in r.output
    assert [i for i, _e in read_dead_letters(data_dir / "dlq")] == ids[1:]
