"""The ``cron`` source: intervals, 5-field expressions in a time zone, checkpointed fires and the catch-up rule."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from orgloop.connectors.cron import CronSource
from orgloop.event import validate_event
from support.fakeclock import FakeClock


def utc(*args) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def make(clock, *schedules, tz="UTC"):
    return CronSource("sched", {"schedules": list(schedules), "timezone": tz}, base_dir=Path("."), clock=clock)


def test_interval_fires_each_tick_once():
    clock = FakeClock(utc(2026, 12, 2, 10, 1, 30))
    src = make(clock, {"name": "health", "cron": "every 5m", "payload": {"task": "check"}})
    events, cp = src.poll(None, 10)
    assert events == []                                     # a new schedule does not fire for the past
    assert src.poll_delay(300) == 60                        # re-checked at least each minute
    clock.advance(180)
    assert src.poll(cp, 10)[0] == []
    assert src.poll_delay(300) == pytest.approx(30)         # until 10:05:00, not the poll interval
    clock.advance(29)
    assert src.poll(cp, 10)[0] == []
    clock.advance(1)
    events, cp = src.poll(cp, 10)
    assert len(events) == 1
    e = validate_event(events[0], fill=False)
    assert e["timestamp"] == "2026-12-02T10:05:00.000Z" and e["source"] == "sched"
    assert e["provenance"] == {"platform": "cron", "platform_event": "schedule.health", "author_type": "system"}
    assert e["payload"] == {"schedule": "health", "task": "check", "fire_time": "2026-12-02T10:05:00.000Z",
                            "missed": 0, "interval_ms": 300000}
    assert src.poll(cp, 10)[0] == []                        # the same tick never fires twice
    assert json.loads(cp) == {"health": "2026-12-02T10:05:00.000Z"}


def test_restart_neither_misses_nor_doubles_and_catches_up_once():
    clock = FakeClock(utc(2026, 12, 2, 10, 0, 0))
    src = make(clock, {"name": "h", "cron": "every 5m"})
    _, cp = src.poll(None, 10)
    clock.advance(300)
    fired, cp = src.poll(cp, 10)
    # A crash after publishing but before the checkpoint: the same fire again, with the same id.
    again, _ = make(clock, {"name": "h", "cron": "every 5m"}).poll(json.dumps({"h": "2026-12-02T10:00:00.000Z"}), 10)
    assert [e["id"] for e in again] == [e["id"] for e in fired]
    # Down for an hour: one catch-up fire for the latest tick, the skipped ones counted.
    clock.advance(3600 + 60)
    restarted = make(clock, {"name": "h", "cron": "every 5m"})
    events, cp = restarted.poll(cp, 10)
    assert len(events) == 1
    assert events[0]["payload"]["fire_time"] == "2026-12-02T11:05:00.000Z" and events[0]["payload"]["missed"] == 11
    assert restarted.poll(cp, 10)[0] == []


def test_cron_expression_in_a_time_zone_across_dst():
    # 09:00 Berlin time: 08:00 UTC in winter (CET), 07:00 UTC after the switch to CEST on 2026-03-29.
    clock = FakeClock(utc(2026, 3, 28, 7, 59, 0))
    src = make(clock, {"name": "standup", "cron": "0 9 * * *"}, tz="Europe/Berlin")
    _, cp = src.poll(None, 10)
    assert src.poll_delay(300) == pytest.approx(60)
    clock.advance(60)
    events, cp = src.poll(cp, 10)
    assert [e["payload"]["fire_time"] for e in events] == ["2026-03-28T08:00:00.000Z"]
    assert src.poll_delay(300) == 60                         # next fire is a day away: re-check each minute
    clock.now = utc(2026, 3, 29, 6, 59, 59)
    assert src.poll(cp, 10)[0] == []
    clock.now = utc(2026, 3, 29, 7, 0, 0)
    events, cp = src.poll(cp, 10)
    assert [(e["payload"]["fire_time"], e["payload"]["missed"]) for e in events] == [("2026-03-29T07:00:00.000Z", 0)]


def test_weekday_expression_counts_missed_ticks():
    clock = FakeClock(utc(2026, 12, 4, 12, 0))              # a Friday
    src = make(clock, {"name": "wd", "cron": "30 8 * * 1-5"})
    _, cp = src.poll(None, 10)
    clock.now = utc(2026, 12, 10, 9, 0)                      # the next Thursday
    events, _ = src.poll(cp, 10)
    # Mon, Tue, Wed, Thu 08:30: fire once for Thursday, three skipped (the weekend has no ticks).
    assert [(e["payload"]["fire_time"], e["payload"]["missed"]) for e in events] == [("2026-12-10T08:30:00.000Z", 3)]


def test_schedules_are_independent_and_ids_differ():
    clock = FakeClock(utc(2026, 12, 2, 0, 0, 30))
    src = make(clock, {"name": "a", "cron": "every 1m"}, {"name": "b", "cron": "* * * * *"})
    _, cp = src.poll(None, 10)
    clock.advance(30)
    events, cp = src.poll(cp, 10)
    assert sorted(e["payload"]["schedule"] for e in events) == ["a", "b"]
    assert len({e["id"] for e in events}) == 2


@pytest.mark.parametrize("schedules, match", [
    ([{"name": "x", "cron": "61 * * * *"}], "neither a 5-field"),
    ([{"name": "x", "cron": "* * * *"}], "neither a 5-field"),
    ([{"name": "x", "cron": "every 5 minutes"}], "neither a 5-field"),
    ([{"name": "x", "cron": "every 5m", "timezone": "Mars/Olympus"}], "unknown time zone"),
    ([{"name": "x", "cron": "every 5m"}, {"name": "x", "cron": "every 1h"}], "unique"),
    ([], "at least 1"),
])
def test_config_errors(schedules, match):
    with pytest.raises(ValidationError, match=match):
        CronSource("s", {"schedules": schedules}, base_dir=Path("."))


def test_source_time_zone_is_checked():
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        CronSource("s", {"schedules": [{"name": "x", "cron": "every 5m"}], "timezone": "Mars/Olympus"},
                   base_dir=Path("."))
