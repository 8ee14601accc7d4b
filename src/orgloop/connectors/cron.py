"""``cron`` source: events on a schedule, checkpointed so no tick is missed or doubled across a restart.

Config (:class:`CronConfig`)::

    schedules:
      - name: daily-standup
        cron: "0 9 * * 1-5"          # 5 fields: minute hour day-of-month month day-of-week
        timezone: Europe/Berlin      # optional; else the source's ``timezone``
        payload: {task: standup}
      - name: health-check
        cron: "every 5m"             # or a bare duration "5m"; s, m, h, d
    timezone: UTC                    # default: the TZ variable, else the system zone, else UTC

5-field expressions are evaluated by ``croniter`` in the schedule's time zone (zoneinfo), so "9:00" stays
9:00 local time across daylight-saving changes. Intervals tick at whole multiples of the interval since
the Unix epoch (``every 5m`` fires at :00, :05, …), whatever the time zone.

Each event is ``resource.changed`` with ``provenance {platform: cron, platform_event: schedule.<name>,
author_type: system}`` and payload ``{schedule, fire_time, missed, …payload}`` (plus ``interval_ms`` for
intervals). Its id is ``natural_event_id(source, schedule name, fire time)``, and its timestamp the fire
time, so a fire emitted twice (a crash between publish and checkpoint) has the same id.

**Checkpoint and catch-up.** The checkpoint maps each schedule name to the time up to which its ticks are
handled (the last fire; for a new schedule, the moment it was first seen: a new schedule does not fire
for the past). When ticks were missed (the runtime was down), the schedule fires **once**, for the latest
missed tick, with ``payload.missed`` the number of earlier ticks skipped (counted up to 1000). It never
fires a burst. The runtime asks :meth:`CronSource.poll_delay` when to poll next, so a tick fires on
time whatever the source's ``poll`` interval (re-checked at least once a minute).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, Field, field_validator, model_validator

from orgloop.event import natural_event_id, new_trace_id
from orgloop.plugins import PluginConfig
from orgloop.units import parse_duration

__all__ = ["CronConfig", "CronSchedule", "CronSource", "local_zone_name"]

log = logging.getLogger("orgloop.connectors.cron")

_INTERVAL = re.compile(r"^(?:every\s+)?(\d+(?:ms|s|m|h|d))$")
MAX_COUNTED = 1000
MAX_WAIT = 60.0


def local_zone_name() -> str:
    """The zone name cron uses by default: ``$TZ`` when it names a zone, else ``/etc/localtime``'s, else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            ZoneInfo(tz)
            return tz
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            ZoneInfo(name)
            return name
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    return "UTC"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Berlin' or 'UTC')") from None


def _zone_name(name: str) -> str:
    _zone(name)
    return name


ZoneName = Annotated[str, AfterValidator(_zone_name)]     # an IANA time zone name, checked


class CronSchedule(PluginConfig):
    name: str = Field(min_length=1)
    cron: str
    timezone: ZoneName | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _expression(cls, value: str) -> str:
        text = " ".join(value.split())
        m = _INTERVAL.match(text)
        if m:
            if parse_duration(m.group(1)) < 1:
                raise ValueError("an interval must be at least 1s")
            return text
        if len(text.split()) != 5 or not croniter.is_valid(text):
            raise ValueError(f"{value!r} is neither a 5-field cron expression nor an interval like 'every 5m'")
        return text

    @property
    def interval(self) -> float | None:
        m = _INTERVAL.match(self.cron)
        return parse_duration(m.group(1)) if m else None


class CronConfig(PluginConfig):
    schedules: list[CronSchedule] = Field(min_length=1)
    timezone: ZoneName | None = None

    @model_validator(mode="after")
    def _unique(self) -> "CronConfig":
        names = [s.name for s in self.schedules]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"schedule names must be unique: {', '.join(dup)}")
        return self


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class _Ticks:
    """Tick arithmetic of one schedule: the first tick after a time, the latest at or before one."""

    def __init__(self, schedule: CronSchedule, zone: ZoneInfo) -> None:
        self.schedule = schedule
        self.zone = zone
        self.interval = schedule.interval

    def next_after(self, t: float) -> float:
        if self.interval:
            return (math.floor(t / self.interval) + 1) * self.interval
        start = datetime.fromtimestamp(t, self.zone)
        return croniter(self.schedule.cron, start).get_next(datetime).timestamp()

    def latest_at(self, t: float) -> float:
        if self.interval:
            return math.floor(t / self.interval) * self.interval
        # Ticks fall on whole minutes: any tick <= t is before floor(t) + 1 s, and get_prev is strict.
        start = datetime.fromtimestamp(math.floor(t) + 1, self.zone)
        return croniter(self.schedule.cron, start).get_prev(datetime).timestamp()

    def missed_between(self, after: float, last: float) -> int:
        """Ticks strictly between ``after`` and ``last`` (counted up to :data:`MAX_COUNTED`)."""
        if self.interval:
            return min(MAX_COUNTED, max(0, round((last - after) / self.interval) - 1))
        it = croniter(self.schedule.cron, datetime.fromtimestamp(after, self.zone))
        n = 0
        while n < MAX_COUNTED and it.get_next(datetime).timestamp() < last:
            n += 1
        return n


class CronSource:
    config_model = CronConfig

    def __init__(self, source_id: str, config: dict[str, Any], *, base_dir: Path,
                 clock: Callable[[], float] = time.time) -> None:
        self.id = source_id
        self.config = cfg = CronConfig.model_validate(config)
        default_zone = cfg.timezone or local_zone_name()
        self.ticks = {s.name: _Ticks(s, _zone(s.timezone or default_zone)) for s in cfg.schedules}
        self.clock = clock
        self._next_due: float | None = None

    def poll(self, checkpoint: str | None, max_events: int) -> tuple[list[dict[str, Any]], str | None]:
        now = self.clock()
        state = self._load(checkpoint)
        events: list[dict[str, Any]] = []
        for name, ticks in self.ticks.items():
            handled = _epoch(state.get(name))
            if handled is None:
                state[name] = _iso(now)          # first seen: start from now, no fire for the past
                continue
            first = ticks.next_after(handled)
            if first > now or len(events) >= max_events:
                continue
            fire = ticks.latest_at(now)
            missed = ticks.missed_between(handled, fire)
            if missed:
                log.warning("cron source %s: schedule %s missed %s tick(s) before %s; firing once for the latest",
                            self.id, name, f"{missed}+" if missed >= MAX_COUNTED else missed, _iso(fire))
            events.append(self._event(ticks.schedule, fire, missed))
            state[name] = _iso(fire)
        self._next_due = min(ticks.next_after(_epoch(state[name]) or now) for name, ticks in self.ticks.items())
        new_cp = json.dumps({k: state[k] for k in self.ticks}, sort_keys=True)
        return events, new_cp

    def poll_delay(self, default: float) -> float:
        """Seconds until the next tick of any schedule (at most a minute, so clock changes are noticed)."""
        if self._next_due is None:
            return 0.0
        return min(MAX_WAIT, max(0.0, self._next_due - self.clock()))

    def close(self) -> None:
        pass

    def _load(self, checkpoint: str | None) -> dict[str, Any]:
        if not checkpoint:
            return {}
        try:
            data = json.loads(checkpoint)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.warning("cron source %s: unreadable checkpoint %r, schedules start from now", self.id, checkpoint)
            return {}
        return data

    def _event(self, schedule: CronSchedule, fire: float, missed: int) -> dict[str, Any]:
        stamp = _iso(fire)
        payload: dict[str, Any] = {"schedule": schedule.name, **schedule.payload, "fire_time": stamp, "missed": missed}
        if schedule.interval:
            payload["interval_ms"] = int(schedule.interval * 1000)
        return {"id": natural_event_id(self.id, schedule.name, stamp), "timestamp": stamp, "source": self.id,
                "type": "resource.changed",
                "provenance": {"platform": "cron", "platform_event": f"schedule.{schedule.name}",
                               "author_type": "system"},
                "payload": payload, "trace_id": new_trace_id()}
