"""Child process for the runtime's crash and signal tests: one Runtime on a FileWalBus (sync=always).

Usage: python pipeline_child.py CONFIG_JSON

A ``file`` source reads the JSONL input; the ``crash-sink`` actor fails a random ``fail_rate`` of its
deliveries (before writing anything) and otherwise appends ``<event id> <run>`` to the sink file with
fsync, so the sink file is the durable record of every delivery the actor accepted. With ``"dedup": true``
the route runs the ``dedup`` transform (state in LMDB under the data directory).

Config keys: ``data``, ``input``, ``sink``, ``run`` (a number written beside each id), ``dedup``,
``fail_rate``, ``delay`` (seconds each delivery sleeps before writing), ``hang`` (deliveries never
return), and the mode: ``"drain"`` (exit 0 once the input is consumed and everything is acked),
``"signals"`` (``Runtime.run_until_signal``, exit 0 after a clean stop) or neither (run until killed).
Prints ``ready`` once deliveries may start (in ``signals`` mode: once the signal handlers are installed).
"""
from __future__ import annotations

import faulthandler
import json
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

from orgloop import plugins
from orgloop.connectors import DeliveryError
from orgloop.runtime import Runtime
from orgloop.spec import (ActorSpec, BreakerSpec, DeliverySpec, RetrySpec, RouteSpec, RuntimeSpec, SourceSpec,
                          TransformRef, TransformSpec)

DEDUP = "once"          # the transform's name: its LMDB state is <data>/state/transforms/once
ROUTE = "feed-to-sink"


class CrashSink:
    """Flaky, optionally slow, fsyncing sink: one line per accepted delivery."""

    def __init__(self, actor_id, config, *, base_dir):
        self.rng = random.Random(config["seed"])
        self.fail_rate = config["fail_rate"]
        self.delay = config["delay"]
        self.hang = config["hang"]
        self.run = config["run"]
        self.fd = os.open(config["path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def deliver(self, event, prompt, config):
        if self.hang:
            threading.Event().wait()
        if self.delay:
            time.sleep(self.delay)
        if self.rng.random() < self.fail_rate:
            raise DeliveryError("flaky sink: refused")
        os.write(self.fd, f"{event['id']} {self.run}\n".encode())
        os.fsync(self.fd)

    def close(self):
        os.close(self.fd)


def build(cfg: dict) -> Runtime:
    plugins.register("actors", "crash-sink", CrashSink)
    transforms = [TransformSpec(DEDUP, "package", "dedup", {"window": "1h"})] if cfg.get("dedup") else []
    spec = RuntimeSpec(
        sources=[SourceSpec("feed", "file", {"path": cfg["input"]}, poll_interval=0.02)],
        actors=[ActorSpec("sink", "crash-sink", {
            "path": cfg["sink"], "seed": cfg["run"] * 7919 + os.getpid(), "run": cfg["run"],
            "fail_rate": cfg.get("fail_rate", 0.0), "delay": cfg.get("delay", 0.0), "hang": cfg.get("hang", False)})],
        routes=[RouteSpec(ROUTE, "feed", "sink", transforms=[TransformRef(t.name) for t in transforms],
                          delivery=DeliverySpec(queue_policy="block", queue_depth=100,
                                                retry=RetrySpec(max_attempts=60, initial_delay=0.001, max_delay=0.005),
                                                circuit_breaker=BreakerSpec(failure_threshold=40, cooldown=0.01)))],
        transforms=transforms, data_dir=Path(cfg["data"]), base_dir=Path(cfg["data"]),
        bus_options={"segment_size": 64 << 10, "compact_every": 100, "sync": "always"})
    return Runtime(spec, max_poll=25)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _drained(rt: Runtime, size: int) -> bool:
    cp = rt.checkpoints.get("feed") or ""        # the file source's "<device>:<inode>:<offset>:<fingerprint>"
    return (cp.split(":")[2:3] == [str(size)] and rt.bus.drain(0)
            and rt.bus.wal.stats()["unacked"] == 0)


def main() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)   # the parent asks for stacks before giving up
    cfg = json.loads(sys.argv[1])
    rt = build(cfg).start()
    if cfg.get("signals"):
        def announce() -> None:   # ready once run_until_signal has replaced the default handlers
            while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                time.sleep(0.005)
            _say("ready")

        threading.Thread(target=announce, daemon=True).start()
        rt.run_until_signal(drain_timeout=cfg.get("drain_timeout", 5.0))
        _say("stopped")
        return
    _say("ready")
    if cfg.get("drain"):
        size = os.path.getsize(cfg["input"])
        while not _drained(rt, size):
            time.sleep(0.02)
        rt.stop()
        _say("drained")
        return
    threading.Event().wait()


if __name__ == "__main__":
    main()
