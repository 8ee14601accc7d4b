"""Real fleets for the tests: a project on a server bus and ``orgloop start --role`` processes of it.

Each member gets ``FLEET_TAG`` in its environment; the project writes its actor output to
``out/<tag>.jsonl`` and its pipeline log (with the ``source.poll`` entries) to ``out/log-<tag>.jsonl``, so
the test knows which member delivered what and when each one polled.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orgloop.instance import pid_alive, wait_for_exit


# Bus options of the fleet tests: a dead member's work is taken over after 2 s.
BUS_OPTIONS = {"redis": "{claim_idle: 2}", "nats": "{ack_wait: 2, storage: memory}"}


def make_fleet(fleet_dir: Path, namespace: str, bus: str, *, dedup: bool, count: int, rate: int) -> "Fleet":
    """A fleet (no member started yet) of a :func:`write_project` project under ``fleet_dir``."""
    project = write_project(fleet_dir / "proj", namespace, bus, count=count, rate=rate, dedup=dedup,
                            bus_options=BUS_OPTIONS[bus])
    (project / "out").mkdir()
    return Fleet(project, fleet_dir / "home")


def number(event: dict[str, Any]) -> int:
    """The generator's sequence number of a delivered event."""
    return int(event["payload"]["n"])


def write_project(root: Path, namespace: str, bus: str, *, count: int, rate: int, dedup: bool,
                  bus_options: str, lease_ttl: str = "3s") -> Path:
    """A project whose source ``gen`` generates ``count`` events at ``rate``/s for route ``r`` to actor
    ``sink`` (through a fleet-wide ``dedup`` on the event id when ``dedup``)."""
    name = namespace.rsplit(".", 1)[0]
    files = {
        "orgloop.yaml": f"""apiVersion: orgloop/v1alpha1
kind: Project
metadata:
  name: {name}
defaults:
  poll_interval: 50ms
connectors: [connectors.yaml]
transforms: [transforms.yaml]
loggers: [loggers.yaml]
runtime:
  bus: {bus}
  bus_options: {bus_options}
  fleet: {{lease_ttl: {lease_ttl}, heartbeat: 500ms}}
""",
        "connectors.yaml": f"""apiVersion: orgloop/v1alpha1
kind: ConnectorGroup
sources:
  - id: gen
    connector: generator
    config: {{count: {count}, rate: {rate}}}
    poll: {{interval: 50ms}}
actors:
  - id: sink
    connector: file
    config: {{path: "out/${{FLEET_TAG}}.jsonl"}}
""",
        "transforms.yaml": """apiVersion: orgloop/v1alpha1
kind: TransformGroup
transforms:
  - name: once
    type: package
    package: "@orgloop/transform-dedup"
    config: {key: [id], window: 10m}
""",
        "loggers.yaml": """apiVersion: orgloop/v1alpha1
kind: LoggerGroup
loggers:
  - name: log
    type: "@orgloop/logger-file"
    config: {path: "out/log-${FLEET_TAG}.jsonl"}
""",
        "routes/r.yaml": f"""apiVersion: orgloop/v1alpha1
kind: RouteGroup
routes:
  - name: r
    when: {{source: gen, events: [resource.changed]}}
    transforms: [{'{ref: once}' if dedup else ''}]
    then: {{actor: sink, delivery: {{queue_policy: block}}}}
""",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("    transforms: []\n", ""), encoding="utf-8")
    return root


@dataclass
class Member:
    tag: str
    role: str
    proc: subprocess.Popen[bytes]
    killed: bool = False


@dataclass
class Fleet:
    """The members of one project's fleet, started as real processes."""

    project: Path
    home: Path
    members: list[Member] = field(default_factory=list)

    def start(self, tag: str, role: str = "all", netns: Any = None, **env: str) -> Member:
        """Start member ``tag`` (in ``netns``, a :class:`support.netcut.Netns`, when given)."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ORGLOOP_")}
        environ.update(ORGLOOP_HOME=str(self.home), FLEET_TAG=tag, **env)
        log = open(self.project / "out" / f"stderr-{tag}.txt", "ab")
        argv = [sys.executable, "-m", "orgloop", "start", "-p", str(self.project), "--role", role]
        popen = netns.popen if netns is not None else subprocess.Popen
        proc = popen(argv, env=environ, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        member = Member(tag, role, proc)
        self.members.append(member)
        return member

    def freeze(self, member: Member) -> None:
        """SIGSTOP ``member``: it holds what it holds until :meth:`kill` (its heartbeats stop too)."""
        os.kill(member.proc.pid, signal.SIGSTOP)

    def thaw(self, member: Member) -> None:
        """SIGCONT a member :meth:`freeze` stopped."""
        os.kill(member.proc.pid, signal.SIGCONT)

    def kill(self, member: Member) -> None:
        os.kill(member.proc.pid, signal.SIGKILL)
        member.proc.wait(30)
        member.killed = True

    def stop_all(self) -> None:
        """SIGTERM the members still running, then SIGKILL any left after 30 s (by pid)."""
        for m in self.members:
            if m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
        for m in self.members:
            if m.proc.poll() is None and not wait_for_exit(m.proc.pid, 30) and pid_alive(m.proc.pid):
                m.proc.kill()
            m.proc.wait(30)

    def delivered(self, tag: str) -> list[dict[str, Any]]:
        """The events member ``tag`` delivered, in order."""
        return _lines(self.project / "out" / f"{tag}.jsonl")

    def member_id(self, member: Member) -> str:
        """The id ``member`` made itself at start (from its first ``source.*`` log entry)."""
        for e in _lines(self.project / "out" / f"log-{member.tag}.jsonl"):
            if e.get("phase") in ("source.poll", "source.lease"):
                return str(e["metadata"]["member"])
        return ""

    def all_delivered(self) -> dict[str, list[dict[str, Any]]]:
        return {m.tag: self.delivered(m.tag) for m in self.members}

    def polls(self) -> list[dict[str, Any]]:
        """Every member's ``source.poll`` metadata (member, epoch, started, ended, ...)."""
        return [e["metadata"] for m in self.members for e in _lines(self.project / "out" / f"log-{m.tag}.jsonl")
                if e.get("phase") == "source.poll"]

    def stderr(self) -> str:
        return "\n".join(f"--- {m.tag}\n" + (self.project / "out" / f"stderr-{m.tag}.txt").read_text(errors="replace")[-3000:]
                         for m in self.members)


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:        # a line being written by a member killed mid-write
            continue
    return out


def overlapping_polls(polls: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of polls by different members whose [started, ended] intervals overlap."""
    ordered = sorted(polls, key=lambda p: p["started"])
    bad = []
    latest: dict[str, Any] | None = None
    for p in ordered:
        if latest is not None and p["member"] != latest["member"] and p["started"] < latest["ended"]:
            bad.append((latest, p))
        if latest is None or p["ended"] > latest["ended"]:
            latest = p
    return bad


def stale_polls(polls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Polls started under an epoch older than one another member had already polled under: a member
    polling after its lease passed on (polls are quick, so this catches what interval overlaps miss)."""
    newest = 0
    stale = []
    for p in sorted(polls, key=lambda p: p["started"]):
        if p["epoch"] < newest:
            stale.append(p)
        newest = max(newest, p["epoch"])
    return stale


def current_lease(store: Any, previous: dict[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """The source's lease as the store has it now (waiting until one is held), or, given ``previous``, the
    first one with a later epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leases = store.leases()
        if leases and (previous is None or leases[0]["epoch"] > previous["epoch"]):
            return dict(leases[0])
        time.sleep(0.05)
    raise AssertionError(f"no lease{' after epoch %d' % previous['epoch'] if previous else ''} within {timeout}s")


def wait_for(pred: Any, timeout: float, fleet: Fleet) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        for m in fleet.members:
            if not m.killed and m.proc.poll() is not None:
                raise AssertionError(f"member {m.tag} exited with {m.proc.returncode}:\n{fleet.stderr()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s:\n{fleet.stderr()}")
