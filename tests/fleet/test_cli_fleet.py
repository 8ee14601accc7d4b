"""``orgloop start --role`` and ``orgloop status`` of a fleet, through the real CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .members import Fleet, wait_for, write_project


def _orgloop(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGLOOP_")}
    env.update(ORGLOOP_HOME=str(home), FLEET_TAG="cli")
    return subprocess.run([sys.executable, "-m", "orgloop", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_role_on_a_single_host_bus_is_a_usage_error(tmp_path, namespace):
    project = write_project(tmp_path / "proj", namespace, "filewal", count=1, rate=0, dedup=False, bus_options="{}")
    r = _orgloop(tmp_path / "home", "start", "-p", str(project), "--role", "router")
    assert r.returncode == 64, r.stderr
    assert "--role router needs a scale-out bus" in r.stderr
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("members"))


def test_status_lists_the_members_their_roles_and_the_lag_of_each_group(namespace):
    tmp = Path(tempfile.mkdtemp(prefix="olfleetcli-", dir="/tmp"))
    project = write_project(tmp / "proj", namespace, "redis", count=50, rate=0, dedup=False,
                            bus_options="{claim_idle: 2}")
    (project / "out").mkdir()
    fleet = Fleet(project, tmp / "home")
    try:
        fleet.start("src", "source")
        fleet.start("rt", "router")
        fleet.start("dl", "delivery")
        wait_for(lambda: len(fleet.delivered("dl")) >= 50, 120, fleet)
        r = _orgloop(tmp / "home", "status", "-p", str(project), "-o", "json")
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        assert st["running"] is True
        members = st["fleet"]["members"]
        assert sorted(m["role"] for m in members) == ["delivery", "router", "source"]
        assert {m["pid"] for m in members} == {m.proc.pid for m in fleet.members}
        assert [(lease["source"], lease["holder"]) for lease in st["fleet"]["leases"]] == [
            ("gen", next(m["member"] for m in members if m["role"] == "source"))]
        groups = {(g["stream"], g["group"]): g for g in st["fleet"]["groups"]}
        assert set(groups) == {("events", "router"), ("deliveries", "delivery")}
        assert all(g["lag"] == 0 for g in groups.values())
        text = _orgloop(tmp / "home", "status", "-p", str(project))
        assert text.returncode == 0 and "3 members" in text.stdout and "deliveries" in text.stdout
    finally:
        fleet.stop_all()
    try:
        r = _orgloop(tmp / "home", "status", "-p", str(project), "-o", "json")
        assert r.returncode == 3, r.stdout           # every member left the fleet when it stopped
        assert json.loads(r.stdout)["fleet"]["members"] == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_members_started_in_the_background_are_stopped_by_orgloop_stop(tmp_path, namespace):
    from orgloop.instance import pid_alive

    project = write_project(tmp_path / "proj", namespace, "redis", count=10, rate=0, dedup=False,
                            bus_options="{claim_idle: 2}")
    home = tmp_path / "home"
    pids = []
    try:
        for role in ("router", "delivery"):
            r = _orgloop(home, "start", "-p", str(project), "--role", role, "--daemon")
            assert r.returncode == 0, r.stderr
            pids.append(int(r.stdout.split("pid ")[1].split(",")[0]))
        members = sorted(p.name for p in home.rglob("members/*"))
        assert len(members) == 2 and all(list(home.rglob(f"members/{m}/runtime.json")) for m in members)
        r = _orgloop(home, "stop", "-p", str(project))
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("orgloop stopped (fleet member") == 2
        assert not any(pid_alive(p) for p in pids)
        assert _orgloop(home, "stop", "-p", str(project)).returncode == 3
    finally:
        for p in pids:
            if pid_alive(p):
                os.kill(p, 9)
