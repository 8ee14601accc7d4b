import json
import os
import signal
import subprocess
import sys
import time

import pytest

from orgloop.checkpoint import (FileCheckpointStore, InMemoryCheckpointStore, LmdbCheckpointStore,
                                resolve_checkpoint_store)


@pytest.mark.parametrize("kind", ["memory", "file", "lmdb"])
def test_get_set_roundtrip_and_persistence(tmp_path, kind):
    make = {"memory": lambda: InMemoryCheckpointStore(), "file": lambda: FileCheckpointStore(tmp_path / "cp"),
            "lmdb": lambda: LmdbCheckpointStore(tmp_path / "cp")}[kind]
    store = make()
    assert store.get("github") is None
    store.set("github", "cursor-1")
    store.set_many({"github": "cursor-2", "cron": "2026-01-01T00:00:00Z"})
    assert store.get("github") == "cursor-2" and store.get("cron") == "2026-01-01T00:00:00Z"
    store.close()
    if kind != "memory":
        again = make()
        assert again.get("github") == "cursor-2"
        again.close()


def test_lmdb_commits_in_batches_not_per_set(tmp_path):
    now = [0.0]
    store = LmdbCheckpointStore(tmp_path / "cp", batch_size=100, batch_interval=0.1, clock=lambda: now[0])
    for i in range(99):
        store.set("s", str(i))
    assert store.commits == 0 and store.get("s") == "98"     # buffered, still visible
    store.set("s", "99")
    assert store.commits == 1
    store.set("s", "100")
    now[0] += 0.2
    store.set("s", "101")
    assert store.commits == 2
    store.close()


def test_file_store_rejects_ids_that_escape_the_directory(tmp_path):
    store = FileCheckpointStore(tmp_path)
    for bad in ["../x", "a/b", "", ".hidden", "x" * 300]:
        with pytest.raises(ValueError, match="invalid source id"):
            store.set(bad, "1")


def test_resolution_order(tmp_path):
    assert isinstance(resolve_checkpoint_store(None, module_path=tmp_path, data_dir=tmp_path / "d"), FileCheckpointStore)
    lm = resolve_checkpoint_store(None, module_path=None, data_dir=tmp_path / "d")
    assert isinstance(lm, LmdbCheckpointStore)
    lm.close()
    assert isinstance(resolve_checkpoint_store(None, module_path=None, data_dir=None), InMemoryCheckpointStore)
    fs = resolve_checkpoint_store({"store": "file", "dir": "cps"}, module_path=tmp_path, data_dir=None)
    assert fs.dir == tmp_path / "cps"
    with pytest.raises(ValueError, match="must be one of"):
        resolve_checkpoint_store({"store": "s3"}, module_path=None, data_dir=None)


@pytest.mark.crash
def test_file_store_survives_sigkill_mid_write(tmp_path):
    code = ("import sys\nfrom orgloop.checkpoint import FileCheckpointStore\n"
            "s = FileCheckpointStore(sys.argv[1])\ni = 0\n"
            "while True:\n    s.set('src', str(i)); print(i, flush=True); i += 1\n")
    for round_ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        last = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
            if last >= 20 + round_ * 7:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        data = json.loads((tmp_path / "src.json").read_text())     # always complete JSON
        assert int(data["checkpoint"]) >= last                      # never behind what it confirmed
