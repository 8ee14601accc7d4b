"""The command actor ends whole process trees: timeouts, daemonising grandchildren, and shutdown."""
from __future__ import annotations

import os
import sys
import threading
import time

import pytest

from orgloop.connectors import DeliveryError, DeliveryInterrupted
from orgloop.connectors.command import CommandActor
from orgloop.event import new_event

# The child starts a grandchild that leaves the process group (setsid), keeps the inherited stdout open
# and writes its pid to a file, then sleeps; the child itself then behaves as `tail` says.
GRANDCHILD = """
import json, os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:                 # a double fork: the grandchild is re-parented away from the child
        open(pidfile, "w").write(str(os.getpid()))
        time.sleep(60)
        os._exit(0)
    os._exit(0)
while not os.path.exists(pidfile) or not open(pidfile).read():
    time.sleep(0.01)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def actor(tmp_path, tail: str, timeout: str) -> tuple[CommandActor, "os.PathLike[str]"]:
    pidfile = tmp_path / "grandchild.pid"
    code = GRANDCHILD + tail
    return CommandActor("cmd", {"command": [sys.executable, "-c", code, str(pidfile)], "timeout": timeout},
                        base_dir=tmp_path), pidfile


def test_timeout_kills_a_setsid_grandchild_and_frees_the_lane_in_time(tmp_path):
    a, pidfile = actor(tmp_path, "time.sleep(60)\n", "1s")
    t0 = time.monotonic()
    with pytest.raises(DeliveryError, match="did not finish within 1s"):
        a.deliver(new_event("gh", "resource.changed", {}), None, {})
    took = time.monotonic() - t0
    grandchild = int(pidfile.read_text())
    assert wait_dead(grandchild), "the daemonised grandchild survived the timeout"
    assert took < 1.0 + 1.0 + 1.5, f"the lane was held {took:.1f}s with a 1s timeout"


def test_success_is_not_held_by_a_grandchild_keeping_stdout_open(tmp_path):
    # The child exits 0 at once; its grandchild keeps stdout open for 60 s. The delivery succeeds after
    # the grace period, and the grandchild holding the pipe is ended.
    a, pidfile = actor(tmp_path, "print(json.dumps({'type': 'actor.stopped'}), flush=True)\n", "20s")
    t0 = time.monotonic()
    out = a.deliver(new_event("gh", "resource.changed", {}), None, {})
    assert time.monotonic() - t0 < 10, "the delivery waited for the grandchild instead of the child"
    assert [e["type"] for e in out] == ["actor.stopped"]
    assert wait_dead(int(pidfile.read_text()))


def test_interrupt_ends_a_running_delivery_without_orphans(tmp_path):
    a, pidfile = actor(tmp_path, "time.sleep(60)\n", "60s")
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            a.deliver(new_event("gh", "resource.changed", {}), None, {})
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    t = threading.Thread(target=deliver)
    t.start()
    end = time.monotonic() + 10
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < end:
        time.sleep(0.02)
    grandchild = int(pidfile.read_text())
    a.interrupt()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], DeliveryInterrupted)
    assert wait_dead(grandchild)
    with pytest.raises(DeliveryInterrupted):      # no new runs once interrupted
        a.deliver(new_event("gh", "resource.changed", {}), None, {})
