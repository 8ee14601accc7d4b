"""The installed ``orgloop`` command end to end, as a user runs it: init -> validate -> plan -> start --daemon -> status
-> start again with a changed route (reconciled in place: same pid) -> stop. Every step is bounded, and only
the daemon this test started is ever signalled."""
import json
import os
import signal
import subprocess
import sys

import pytest

from orgloop.config.workspaces import project_key
from orgloop.instance import pid_alive

pytestmark = pytest.mark.slow


def run(*args, env, timeout=90):
    return subprocess.run([sys.executable, "-m", "orgloop", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_init_plan_daemon_status_reconcile_stop(tmp_path):
    env = {**os.environ, "ORGLOOP_HOME": str(tmp_path / "home")}
    env.pop("ORGLOOP_WORKSPACE", None)
    project = tmp_path / "demo"
    assert run("init", project, env=env).returncode == 0
    r = run("validate", "-p", project, env=env)
    assert r.returncode == 0 and 'Project "demo" is valid' in r.stdout, r.stdout + r.stderr
    r = run("plan", "-p", project, env=env)
    assert r.returncode == 2 and "+ route heartbeat-to-inbox" in r.stdout, r.stderr
    daemon_pid = None
    try:
        r = run("start", "-p", project, "--daemon", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        data_dir = tmp_path / "home" / "data" / project_key("demo", project) / "default"
        info = json.loads((data_dir / "runtime.json").read_text())
        daemon_pid = info["pid"]
        assert (data_dir / "orgloop.pid").read_text().strip() == str(daemon_pid)
        assert (data_dir / "orgloop.log").is_file() and (data_dir / "applied-state.json").is_file()
        assert f"running in the background: pid {daemon_pid}" in r.stdout
        r = run("status", "-p", project, "--json", env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["pid"] == daemon_pid

        route = project / "routes" / "heartbeat.yaml"
        route.write_text(route.read_text().replace("max_rate: 100/s", "max_rate: 40/s"))
        r = run("plan", "-p", project, env=env)
        assert r.returncode == 2 and '    then.delivery.max_rate: "100/s" -> "40/s"' in r.stdout
        r = run("start", "-p", project, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"Applied to the running runtime (pid {daemon_pid}) without a restart." in r.stdout
        status = json.loads(run("status", "-p", project, "--json", env=env).stdout)
        assert status["pid"] == daemon_pid                      # same process: reconciled, not restarted
        assert [r["max_rate"] for r in status["routes"]] == [40.0]
        assert run("plan", "-p", project, env=env).returncode == 0

        r = run("stop", "-p", project, env=env)
        assert r.returncode == 0 and f"orgloop stopped (pid {daemon_pid})" in r.stdout, r.stderr
        assert not pid_alive(daemon_pid)
        assert run("status", "-p", project, env=env).returncode == 3          # not running
        assert run("stop", "-p", project, env=env).returncode == 3
    finally:
        if daemon_pid is not None and pid_alive(daemon_pid):
            os.kill(daemon_pid, signal.SIGKILL)
