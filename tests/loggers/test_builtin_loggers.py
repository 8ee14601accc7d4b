import gzip
import io
import json
import threading
import time

from orgloop.loggers.console import ConsoleLogger
from orgloop.loggers.hub import LogHub
from orgloop.loggers.jsonl import JsonlFileLogger


def test_console_filters_by_level_and_formats():
    out = io.StringIO()
    lg = ConsoleLogger("c", {"level": "warn"}, stream=out)
    lg.log_many([{"phase": "deliver.success", "route": "r"},
                 {"phase": "deliver.failure", "route": "r", "target": "agent", "error": "exit 3", "timestamp": "2026-01-01T00:00:00.123Z"}])
    text = out.getvalue()
    assert "deliver.success" not in text and "deliver.failure route=r target=agent error=exit 3" in text
    assert "\x1b[" not in text   # not a TTY: no colour


def test_jsonl_logger_rotates_by_size_and_age_and_keeps_max_files(tmp_path):
    now = [0.0]
    lg = JsonlFileLogger("f", {"path": "logs/o.jsonl", "max_size": "200B", "max_files": 2, "compress": True},
                         base_dir=tmp_path, clock=lambda: now[0])
    for i in range(12):
        lg.log_many([{"phase": "route.match", "n": i, "pad": "x" * 60}])
    lg.close()
    d = tmp_path / "logs"
    names = sorted(p.name for p in d.iterdir())
    assert names == ["o.jsonl", "o.jsonl.1.gz", "o.jsonl.2.gz"]
    newest_rotated = [json.loads(x) for x in gzip.decompress((d / "o.jsonl.1.gz").read_bytes()).splitlines()]
    current = [json.loads(x) for x in (d / "o.jsonl").read_text().splitlines()]
    assert newest_rotated[-1]["n"] + 1 == current[0]["n"] and current[-1]["n"] == 11
    lg2 = JsonlFileLogger("f", {"path": "logs/age.jsonl", "max_age": "1h", "compress": False}, base_dir=tmp_path,
                          clock=lambda: now[0])
    lg2.log_many([{"n": 1}])
    now[0] += 3601
    lg2.log_many([{"n": 2}])
    lg2.close()
    assert (d / "age.jsonl.1").read_text().count("\n") == 1 and (d / "age.jsonl").read_text().count("\n") == 1


class SlowLogger:
    """Takes its time with every batch; records every entry it was given."""

    def __init__(self, delay: float, gate: "threading.Event | None" = None) -> None:
        self.delay, self.gate, self.entries = delay, gate, []

    def log_many(self, entries):
        if self.gate is not None:
            self.gate.wait()
        time.sleep(self.delay)
        self.entries.extend(entries)

    def close(self):
        pass


def test_log_hub_waits_for_a_slow_logger_instead_of_dropping(tmp_path):
    slow = SlowLogger(0.01)
    hub = LogHub([slow], "default", flush_interval=0.01, max_pending=200)
    hub.start()
    for i in range(5_000):                       # far more than max_pending, faster than the logger
        hub.emit([{"phase": "x", "metadata": {"i": i}}])
    hub.close()
    assert hub.dropped == 0
    assert [e["metadata"]["i"] for e in slow.entries] == list(range(5_000))


def test_log_hub_drops_only_for_a_stuck_logger_and_says_so(tmp_path):
    gate = threading.Event()
    stuck = SlowLogger(0.0, gate)
    hub = LogHub([stuck], "default", flush_interval=0.01, max_pending=100, max_wait=0.05)
    hub.start()
    for i in range(400):
        hub.emit([{"phase": "x", "metadata": {"i": i}}])
    gate.set()
    hub.close()
    assert hub.dropped > 0
    kept = [e for e in stuck.entries if e["phase"] == "x"]
    warnings = [e for e in stuck.entries if e["phase"] == "logger.dropped"]
    assert len(kept) + hub.dropped == 400
    assert sum(w["metadata"]["count"] for w in warnings) == hub.dropped


def test_loggers_accept_orgloops_published_config_forms(tmp_path, monkeypatch):
    """OrgLoop writes `rotation:` nested, `format: jsonl`, `~` paths, `color`/`show_payload` on the console."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    logger = JsonlFileLogger("f", {"path": "~/.orgloop/logs/x.log", "format": "jsonl",
                                   "rotation": {"max_size": "50MB", "max_age": "1h", "max_files": 3},
                                   "buffer": {"size": 100, "flush_interval": "1s"}}, base_dir=tmp_path)
    try:
        assert logger.path == tmp_path / "home" / ".orgloop" / "logs" / "x.log"
        assert (logger.max_size, logger.max_age, logger.max_files, logger.compress) == (50 << 20, 3600.0, 3, True)
    finally:
        logger.close()
    out = io.StringIO()
    console = ConsoleLogger("c", {"level": "info", "color": False, "show_payload": True}, stream=out)
    console.log_many([{"timestamp": "2026-01-01T00:00:00.000Z", "phase": "deliver.success", "target": "a",
                       "metadata": {"attempt": 2}}])
    assert out.getvalue().rstrip().endswith('target=a metadata={"attempt": 2}')
