"""SIGHUP reloads a running daemon in place (validate, plan, reconcile); a bad reload keeps the old
configuration running; signals never leave the pid file or runtime.json behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orgloop.config.loader import load_project
from orgloop.instance import INFO_FILE, LOG_FILE, PID_FILE, pid_alive


def _orgloop(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orgloop", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _status(project: Path, env: dict[str, str]) -> dict:
    return json.loads(_orgloop("status", "-p", project, "-o", "json", env=env).stdout)


@pytest.mark.slow
def test_sighup_reloads_in_place_and_a_bad_reload_keeps_the_old_configuration(demo, home):
    env = {**os.environ, "ORGLOOP_HOME": str(home)}
    r = _orgloop("start", "-p", demo, "--daemon", env=env)
    assert r.returncode == 0, r.stderr
    data = load_project(demo).data_dir
    pid = int((data / PID_FILE).read_text())
    log = data / LOG_FILE
    route = demo / "routes" / "heartbeat.yaml"
    original = route.read_text()
    try:
        route.write_text(original.replace("max_rate: 100/s", "max_rate: 40/s"))
        os.kill(pid, signal.SIGHUP)
        assert _wait(lambda: "reload applied: Plan: 1 route changed." in log.read_text()), log.read_text()
        st = _status(demo, env)
        assert st["pid"] == pid and [x["max_rate"] for x in st["routes"]] == [40.0]
        assert _orgloop("plan", "-p", demo, env=env).returncode == 0               # applied state recorded

        route.write_text(original.replace("actor: inbox", "actor: nobody"))       # invalid
        os.kill(pid, signal.SIGHUP)
        assert _wait(lambda: "reload failed: the project has 1 error(s)" in log.read_text()), log.read_text()
        assert "routes/heartbeat.yaml:13:14: error: unknown actor 'nobody'" in log.read_text()
        st = _status(demo, env)
        assert st["pid"] == pid and st["healthy"] and [x["max_rate"] for x in st["routes"]] == [40.0]

        route.write_text(original.replace("max_rate: 100/s", "max_rate: 40/s"))
        actors = demo / "connectors" / "connectors.yaml"
        actors.write_text(actors.read_text().replace("include_prompt: true", "include_prompt: false"))
        os.kill(pid, signal.SIGHUP)                                                 # needs a restart
        assert _wait(lambda: "these changes need a restart" in log.read_text()), log.read_text()
        r = _orgloop("start", "-p", demo, env=env)                                  # the same through start
        assert r.returncode == 1 and r.stderr.rstrip().endswith(f"orgloop start -p {demo} -w default --daemon")
        assert pid_alive(pid)
    finally:
        r = _orgloop("stop", "-p", demo, env=env)
    assert r.returncode == 0, r.stderr
    assert not (data / PID_FILE).exists() and not (data / INFO_FILE).exists()


@pytest.mark.slow
def test_sighup_without_a_reload_handler_stops_cleanly(tmp_path):
    """A library user's run_until_signal (no on_reload): SIGHUP is a clean stop, not a kill."""
    code = ("import sys, pathlib, orgloop\n"
            "spec = orgloop.RuntimeSpec(data_dir=pathlib.Path(sys.argv[1]))\n"
            "rt = orgloop.Runtime(spec).start()\n"
            "print('up', flush=True)\n"
            "rt.run_until_signal()\n"
            "print('stopped cleanly', flush=True)\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        time.sleep(0.2)                                                             # the handler is installed
        child.send_signal(signal.SIGHUP)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0 and "stopped cleanly" in out
