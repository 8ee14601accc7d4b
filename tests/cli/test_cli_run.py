"""``orgloop start | stop | status | logs`` in-process: a foreground run, reconciling a live runtime without a
restart (the runtime runs in this process, so its pid is ours), refusals, and the not-running exit codes."""
import json
import re
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from orgloop.config.workspaces import workspace_data_dir
from orgloop.config.loader import load_project
from orgloop.config.resolve import to_runtime_spec
from orgloop.control.paths import socket_path
from orgloop.instance import INFO_FILE, PID_FILE, Instance, write_instance
from orgloop.plan import desired_state
from orgloop.runtime import Runtime
from support.plan_helpers import edit


@pytest.fixture
def live(demo, home):
    """The demo's runtime started as `orgloop start` would, in this process."""
    project = load_project(demo)
    spec = to_runtime_spec(project)
    spec.control_socket = socket_path(project.data_dir)
    rt = Runtime(spec).start()
    rt.applied_state = desired_state(project)
    write_instance(project.data_dir, Instance(os.getpid(), str(rt.control_socket), time.time()))
    yield rt
    rt.stop()


def test_foreground_start_records_the_state_and_cleans_up_after_itself(demo, cli, home):
    r = cli("start", "-p", demo, "--for", "300ms")
    assert r.exit_code == 0, r.output
    assert "Plan: 1 source added" in r.stdout
    last = r.stdout.rstrip().splitlines()[-1]
    assert re.fullmatch(r"orgloop stopped: (\d+) received, (\d+) delivered, (\d+) dropped, (\d+) deduplicated, "
                        r"0 dead-lettered", last), last
    data = workspace_data_dir("demo", demo, "default")
    assert (data / "applied-state.json").is_file()
    assert not (data / INFO_FILE).exists() and not (data / PID_FILE).exists()
    phases = [json.loads(line)["phase"] for line in (demo / "out" / "pipeline.jsonl").read_text().splitlines()]
    assert phases[0] == "runtime.start" and phases[-1] == "runtime.stop"
    r = cli("plan", "-p", demo)
    assert r.exit_code == 0 and "compared with the state applied at" in r.stdout


def test_status_of_a_running_runtime(demo, cli, live):
    r = cli("status", "-p", demo)
    assert r.exit_code == 0, r.output
    assert f"running, pid {os.getpid()}" in r.stdout and "healthy" in r.stdout
    assert "heartbeat-to-inbox\tinbox\t" in r.stdout and "\tclosed\t" in r.stdout
    out = json.loads(cli("status", "-p", demo, "--json").stdout)
    assert out["running"] is True and out["pid"] == os.getpid()
    assert [s["id"] for s in out["sources"]] == ["heartbeat"] and "unacked" in out["wal"]


def test_start_on_a_running_runtime_reconciles_routes_actors_sources_without_a_restart(demo, cli, live):
    route_before = live.router.routes["heartbeat-to-inbox"]
    r = cli("start", "-p", demo)
    assert r.exit_code == 0 and "nothing to change" in r.stdout
    edit(demo / "routes" / "heartbeat.yaml", "max_rate: 100/s", "max_rate: 50/s")
    edit(demo / "connectors" / "connectors.yaml", "actors:\n", "  - id: ticks\n    connector: generator\n"
         "    config: {rate: 1}\nactors:\n  - id: audit\n    connector: file\n    config: {path: out/audit.jsonl}\n")
    (demo / "routes" / "audit.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n  - name: audit-all\n    when:\n"
        "      source: ticks\n    then:\n      actor: audit\n")
    r = cli("start", "-p", demo)
    assert r.exit_code == 0, r.output
    assert "Plan: 1 source added, 1 actor added, 1 route added, 1 route changed." in r.stdout
    assert f"Applied to the running runtime (pid {os.getpid()}) without a restart." in r.stdout
    assert live.router.routes["heartbeat-to-inbox"] is not route_before
    assert live.router.routes["heartbeat-to-inbox"].spec.delivery.max_rate == 50
    assert "audit" in live.lanes and "ticks" in {s.id for s in live.spec.sources}
    assert cli("plan", "-p", demo).exit_code == 0              # the runtime reports the new state

    (demo / "routes" / "audit.yaml").unlink()
    edit(demo / "connectors" / "connectors.yaml", "  - id: audit\n    connector: file\n"
         "    config: {path: out/audit.jsonl}\n", "")
    edit(demo / "connectors" / "connectors.yaml", "config: {rate: 1}", "config: {rate: 3}")
    r = cli("start", "-p", demo)
    assert r.exit_code == 0, r.output
    assert "Plan: 1 source changed, 1 actor removed, 1 route removed." in r.stdout
    assert "audit" not in live.lanes and "audit-all" not in live.router.routes
    assert [lane.actor_id for lane in live.router.lanes] == ["inbox"]
    assert [s.config for s in live.spec.sources if s.id == "ticks"] == [{"rate": 3}]
    assert cli("plan", "-p", demo).exit_code == 0


@pytest.mark.parametrize("change, reason", [
    (("loggers/loggers.yaml", "max_size: 10MB", "max_size: 20MB"), "logger pipeline-log changed"),
    (("transforms/transforms.yaml", "window: 2s", "window: 3s"), "transform once changed"),
    (("connectors/connectors.yaml", "include_prompt: true", "include_prompt: false"), "actor inbox changed"),
    (("routes/heartbeat.yaml", "queue_depth: 1000", "queue_depth: 50"),
     "actor inbox: its queue would change from 1000 events (default) to 50 (default)"),
])
def test_changes_that_need_a_restart_are_refused_and_nothing_is_applied(demo, cli, live, change, reason):
    routes_before = dict(live.router.routes)
    path, old, new = change
    edit(demo / path, old, new)
    r = cli("start", "-p", demo)
    assert r.exit_code == 1
    assert reason in r.stderr and "Restart to apply them: orgloop stop" in r.stderr
    assert live.router.routes == routes_before
    assert cli("plan", "-p", demo).exit_code == 2              # still pending


def test_stop_and_status_when_nothing_runs(demo, cli, home):
    r = cli("stop", "-p", demo)
    assert r.exit_code == 3 and 'not running for workspace "default"' in r.stderr
    r = cli("status", "-p", demo)
    assert r.exit_code == 3 and "not running" in r.stdout
    assert json.loads(cli("status", "-p", demo, "--json").stdout) == {"running": False, "workspace": "default"}


def test_stale_runtime_files_are_not_a_running_runtime(demo, cli, home):
    data = workspace_data_dir("demo", demo, "default")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()                                # a pid that surely is gone
    child = proc.pid
    write_instance(data, Instance(child, str(data / "control.sock"), time.time()))
    assert cli("status", "-p", demo).exit_code == 3
    assert cli("stop", "-p", demo).exit_code == 3
    assert not (data / INFO_FILE).exists()


def test_a_daemon_that_fails_to_start_reports_its_error(demo, cli, home):
    project = load_project(demo)
    rt = Runtime(to_runtime_spec(project)).start()           # holds the workspace's WAL, no runtime files
    try:
        r = cli("start", "-p", demo, "--daemon", "--wait", "60s")
    finally:
        rt.stop()
    assert r.exit_code == 1
    assert "the daemon exited with code 1" in r.stderr and "the runtime failed to start" in r.stderr


def _write_log(demo, entries):
    (demo / "out").mkdir(exist_ok=True)
    with open(demo / "out" / "pipeline.jsonl", "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
        f.write('{"phase": "deliver.su')                      # a line still being written: not shown


def test_logs_filters_and_formats(demo, cli):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    _write_log(demo, [
        {"timestamp": "2020-01-01T00:00:00.000Z", "phase": "route.match", "route": "r1", "source": "s1",
         "event_type": "resource.changed"},
        {"timestamp": now, "phase": "deliver.success", "route": "r1", "source": "s1", "target": "inbox",
         "event_type": "resource.changed", "duration_ms": 1.25},
        {"timestamp": now, "phase": "deliver.failure", "route": "r2", "source": "s2", "target": "inbox",
         "event_type": "actor.stopped", "error": "boom"},
    ])
    r = cli("logs", "-p", demo)
    assert r.exit_code == 0
    assert len(r.stdout.splitlines()) == 3
    assert r.stdout.splitlines()[1] == (f"{now} deliver.success    route=r1 source=s1 target=inbox "
                                        "event_type=resource.changed 1.2ms")
    assert cli("logs", "-p", demo, "--route", "r2").stdout.splitlines()[0].endswith("error=boom")
    assert len(cli("logs", "-p", demo, "--source", "s1").stdout.splitlines()) == 2
    assert len(cli("logs", "-p", demo, "--type", "actor.stopped").stdout.splitlines()) == 1
    assert len(cli("logs", "-p", demo, "--event-type", "actor.stopped").stdout.splitlines()) == 1
    recent = cli("logs", "-p", demo, "--since", "1h", "--format", "json").stdout.splitlines()
    assert [json.loads(x)["phase"] for x in recent] == ["deliver.success", "deliver.failure"]
    assert cli("logs", "-p", demo, "--since", "soon").exit_code == 64


def test_logs_without_a_file_logger_or_file(demo, cli):
    r = cli("logs", "-p", demo)
    assert r.exit_code == 0 and "no log entries yet" in r.stderr
    r = cli("logs", "-p", demo, "--logger", "other")
    assert r.exit_code == 1 and "no file logger named 'other'" in r.stderr
    edit(demo / "orgloop.yaml", "loggers:\n  - loggers/loggers.yaml\n", "")
    r = cli("logs", "-p", demo)
    assert r.exit_code == 1 and "no file logger" in r.stderr


def test_description_only_changes_of_plug_ins_are_applied_without_touching_them(demo, cli, live):
    actor_before = live.actors["inbox"]
    edit(demo / "connectors" / "connectors.yaml", "description: Appends every", "description: Writes every")
    r = cli("start", "-p", demo)
    assert r.exit_code == 0, r.output
    assert "~ actor inbox\n    description:" in r.stdout and "without a restart" in r.stdout
    assert live.actors["inbox"] is actor_before
    assert cli("plan", "-p", demo).exit_code == 0


def test_a_first_route_to_an_idle_actor_that_needs_a_bigger_queue_is_refused(demo, cli, live):
    edit(demo / "connectors" / "connectors.yaml", "actors:\n", "actors:\n  - id: idle\n    connector: file\n"
         "    config: {path: out/idle.jsonl}\n")
    assert cli("start", "-p", demo).exit_code == 0                      # a new actor, no route yet
    (demo / "routes" / "idle.yaml").write_text(
        "apiVersion: orgloop/v1alpha1\nkind: RouteGroup\nroutes:\n  - name: to-idle\n    when:\n"
        "      source: heartbeat\n    then:\n      actor: idle\n      delivery: {queue_depth: 5000}\n")
    r = cli("start", "-p", demo)
    assert r.exit_code == 1
    assert "actor idle: its queue would change from 1000 events (default) to 5000 (default)" in r.stderr


def test_logs_follow_prints_entries_appended_later(demo, home):
    """`orgloop logs -f` as a child process: it prints what is appended after it started; it is then
    stopped by its pid (SIGINT, as Ctrl-C) and exits 0."""
    _write_log(demo, [{"timestamp": "2026-01-01T00:00:00.000Z", "phase": "runtime.start"}])
    env = {**os.environ, "ORGLOOP_HOME": str(home)}
    child = subprocess.Popen([sys.executable, "-m", "orgloop", "logs", "-p", str(demo), "-f", "--format", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
    try:
        assert json.loads(lines.get(timeout=60))["phase"] == "runtime.start"
        with open(demo / "out" / "pipeline.jsonl", "a") as f:
            f.write('ccess", "route": "r"}\n')              # completes the partial line _write_log left
            f.write(json.dumps({"phase": "runtime.stop"}) + "\n")
        assert json.loads(lines.get(timeout=60)) == {"phase": "deliver.success", "route": "r"}
        assert json.loads(lines.get(timeout=60))["phase"] == "runtime.stop"
    finally:
        child.send_signal(signal.SIGINT)
        try:
            err = child.communicate(timeout=30)[1]
        except subprocess.TimeoutExpired:
            child.kill()
            err = child.communicate()[1]
    assert child.returncode == 0, err


def test_status_of_an_unhealthy_runtime_exits_2(demo, cli, live, monkeypatch):
    monkeypatch.setattr(live, "healthy", lambda: (False, ["route heartbeat-to-inbox: circuit breaker open"]))
    r = cli("status", "-p", demo)
    assert r.exit_code == 2
    assert "UNHEALTHY" in r.stdout and "problem: route heartbeat-to-inbox: circuit breaker open" in r.stdout


def _fake_runtime(demo, ignore_term: bool) -> subprocess.Popen:
    """A child whose command line names orgloop, recorded as the demo's runtime (no control endpoint)."""
    code = ("import signal, sys, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "print('ready', flush=True)\ntime.sleep(120)\n")
    child = subprocess.Popen([sys.executable, "-c", code, "orgloop-fake-runtime"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"          # its signal handling is in place
    write_instance(workspace_data_dir("demo", demo, "default"), Instance(child.pid, str(demo / "no-such.sock"), time.time()))
    return child


@pytest.mark.parametrize("ignore_term, code, message", [(False, 0, "orgloop stopped"),
                                                        (True, 1, "still running after 0.3s")])
def test_stop_sends_sigterm_and_waits(demo, cli, home, ignore_term, code, message):
    child = _fake_runtime(demo, ignore_term)
    try:
        r = cli("stop", "-p", demo, "--timeout", "300ms")
        assert r.exit_code == code
        assert message in r.output
        assert (child.poll() is None) is ignore_term
    finally:
        child.kill()
        child.communicate()


def test_start_refuses_an_invalid_project(cli, tmp_path, home):
    from support.projects import BROKEN

    r = cli("start", "-p", BROKEN)
    assert r.exit_code == 1
    assert r.stdout == "" and "error:" in r.stderr and "Nothing was done" in r.stderr
    assert not (home / "data").exists()


def test_the_starter_shows_its_filter_and_dedup_at_work_in_the_summary(demo, cli):
    r = cli("start", "-p", demo, "--for", "3s")
    assert r.exit_code == 0, r.output
    last = r.stdout.rstrip().splitlines()[-1]
    m = re.fullmatch(r"orgloop stopped: (\d+) received, (\d+) delivered, (\d+) dropped, (\d+) deduplicated, "
                     r"(\d+) dead-lettered", last)
    assert m, last
    received, delivered, dropped, deduplicated, dead = map(int, m.groups())
    assert dropped == 5 and deduplicated >= 1 and delivered >= 1 and dead == 0      # the warm-up, the repeats
    assert delivered + dropped + deduplicated <= received
    inbox = [json.loads(line) for line in (demo / "out" / "inbox.jsonl").read_text().splitlines()]
    assert len(inbox) == delivered
