"""Schedules as staff write them (API and YAML seed files), validated before they are stored.

A schedule drives one zone on some day types. Each entry fires at a time of day (``07:30``) or relative
to the sun (``sunset+10``, ``sunrise-15``); lighting entries turn the zone on, off or dim it (``until``
makes a span: the state holds to then, and what was below shows through again); broadcast entries play a
programme for ``duration_s`` or stop. ``weekdays`` picks the timetable's weekdays (a make-up Saturday
that follows Monday runs Monday's entries). ``dates`` makes an entry one-off: it runs on those dates,
whatever their day type, and above the regular entries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from houqin.inventory.model import Site
from houqin.schedules.calendar import WEEKDAYS, DayType, Weekday
from houqin.schedules.sun import sun_event

Action = Literal["on", "off", "dim", "play", "stop", "limit"]
LIGHTING_ACTIONS = frozenset({"on", "off", "dim"})
BROADCAST_ACTIONS = frozenset({"play", "stop"})
# Dorm power: on (power back, where the room is otherwise allowed it), off (curfew), or a power limit in W
# that trips a room drawing more (a lower night limit instead of a cut).
DORM_POWER_ACTIONS = frozenset({"on", "off", "limit"})
ACTIONS_OF_KIND = {"lighting": LIGHTING_ACTIONS, "broadcast": BROADCAST_ACTIONS, "dorm_power": DORM_POWER_ACTIONS}

_AT = re.compile(
    r"^(?:(?P<clock>\d{1,2}:\d{2}(?::\d{2})?)|(?P<sun>sunrise|sunset)(?:(?P<sign>[+-])(?P<minutes>\d{1,3}))?)$"
)


@dataclass(frozen=True)
class At:
    """When an entry fires on a day: a local clock time, or minutes from sunrise or sunset."""

    anchor: Literal["clock", "sunrise", "sunset"]
    clock: time | None = None
    offset_minutes: int = 0

    @classmethod
    def parse(cls, text: str) -> At:
        match = _AT.match(text.strip())
        if match is None:
            raise ValueError(f"give a time of day (07:30), or sunrise/sunset with minutes (sunset+10), got {text!r}")
        if match.group("clock"):
            try:
                return cls("clock", time.fromisoformat(match.group("clock").zfill(5)))
            except ValueError:
                raise ValueError(f"{text!r} is not a time of day") from None
        minutes = int(match.group("minutes") or 0)
        if minutes > 180:
            raise ValueError(f"at most 180 minutes from {match.group('sun')}, got {minutes}")
        sun: Literal["sunrise", "sunset"] = "sunrise" if match.group("sun") == "sunrise" else "sunset"
        return cls(sun, None, -minutes if match.group("sign") == "-" else minutes)

    def on(self, day: date, site: Site, tz: ZoneInfo) -> datetime | None:
        """The UTC instant on the local ``day``; None when the sun does not rise or set that day."""
        if self.anchor == "clock":
            assert self.clock is not None
            return datetime.combine(day, self.clock, tz).astimezone(UTC)
        if site.latitude is None or site.longitude is None:
            return None
        event = sun_event(day, site.latitude, site.longitude, self.anchor)
        return None if event is None else event + timedelta(minutes=self.offset_minutes)

    def __str__(self) -> str:
        if self.anchor == "clock":
            assert self.clock is not None
            return self.clock.isoformat(timespec="seconds" if self.clock.second else "minutes")
        return self.anchor + (f"{self.offset_minutes:+d}" if self.offset_minutes else "")


def _at(value: str) -> str:
    At.parse(value)
    return value


AtText = Annotated[str, AfterValidator(_at)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryIn(_Strict):
    name: str = Field(default="", max_length=64)
    at: AtText
    until: AtText | None = Field(default=None, description="lighting: the state holds until then")
    action: Action
    level: int | None = Field(default=None, ge=1, le=100, description="dim: the level in %")
    limit_w: int | None = Field(default=None, ge=50, le=100_000, description="limit: the rooms' power limit in W")
    programme: str | None = Field(
        default=None, min_length=1, max_length=64, description="play: bell, music, an announcement id"
    )
    duration_s: int | None = Field(default=None, ge=1, le=3600, description="play: how long")
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    dates: list[date] | None = Field(default=None, min_length=1, max_length=366)
    play_if_missed: bool = Field(default=False, description="play late (for what remains of it) if houqin was down")

    @model_validator(mode="after")
    def _arguments(self) -> Self:
        if self.action == "dim" and self.level is None:
            raise ValueError("level: dim needs a level (1-100)")
        if self.action != "dim" and self.level is not None:
            raise ValueError("level: only dim takes a level")
        if self.action == "limit" and self.limit_w is None:
            raise ValueError("limit_w: limit needs the power limit in W")
        if self.action != "limit" and self.limit_w is not None:
            raise ValueError("limit_w: only limit takes a power limit")
        if self.action == "play" and (self.programme is None or self.duration_s is None):
            raise ValueError("programme: play needs a programme and a duration_s")
        if self.action != "play" and (self.programme is not None or self.duration_s is not None):
            raise ValueError("programme: only play takes a programme and a duration_s")
        if self.until is not None and self.action not in LIGHTING_ACTIONS | DORM_POWER_ACTIONS:
            raise ValueError("until: only lighting and dorm-power entries hold a state until a time")
        if self.until is not None and self.until.strip() == self.at.strip():
            raise ValueError("until: the span ends when it begins")
        if self.play_if_missed and self.action != "play":
            raise ValueError("play_if_missed: only play entries can be played late")
        return self

    def label(self, index: int) -> str:
        what = (
            self.action
            + (f" {self.level}%" if self.level else "")
            + (f" {self.limit_w} W" if self.limit_w else "")
            + (f" {self.programme}" if self.programme else "")
        )
        return f"#{index + 1}{' ' + repr(self.name) if self.name else ''} ({self.at} {what})"


class ScheduleIn(_Strict):
    name: str = Field(min_length=1, max_length=128)
    zone: str = Field(min_length=1, max_length=64)
    day_types: list[DayType] = Field(default_factory=lambda: ["school_day"], min_length=1)
    enabled: bool = True
    entries: list[EntryIn] = Field(min_length=1, max_length=500)


def _days_meet(first: EntryIn, second: EntryIn) -> bool:
    """Whether two entries of one schedule can run on the same day."""
    if (first.dates is None) != (second.dates is None):
        return False  # one-off entries sit above the regular ones: not a contradiction
    if first.dates is not None and second.dates is not None and not set(first.dates) & set(second.dates):
        return False
    return first.weekdays is None or second.weekdays is None or bool(set(first.weekdays) & set(second.weekdays))


def _clock_minutes(text: str) -> float | None:
    at = At.parse(text)
    if at.anchor != "clock" or at.clock is None:
        return None
    return at.clock.hour * 60 + at.clock.minute + at.clock.second / 60


def _comparable(first: str, second: str) -> tuple[float, float] | None:
    """Two ``at`` texts on one scale (minutes of the day, or minutes from the same sun event)."""
    a, b = At.parse(first), At.parse(second)
    if a.anchor != b.anchor:
        return None
    if a.anchor == "clock":
        one, two = _clock_minutes(first), _clock_minutes(second)
        assert one is not None and two is not None
        return one, two
    return float(a.offset_minutes), float(b.offset_minutes)


def entry_state(entry: EntryIn) -> tuple[str, int | None]:
    """The state an entry holds: its action and its dim level (%) or power limit (W)."""
    return (entry.action, entry.level if entry.action == "dim" else entry.limit_w)


def contradictions(schedule: ScheduleIn, zone_kind: str) -> list[str]:
    """What is wrong with a schedule for a zone of ``zone_kind``: entries of the other kind, and entries
    that can run on the same day and contradict each other (two states at one moment, a point entry
    inside another entry's span with a different state, two programmes playing over each other).
    Sun-relative entries are compared with entries relative to the same sun event."""
    problems: list[str] = []
    allowed = ACTIONS_OF_KIND[zone_kind]
    for index, entry in enumerate(schedule.entries):
        if entry.action not in allowed:
            problems.append(f"entry {entry.label(index)}: a {zone_kind} zone takes {', '.join(sorted(allowed))}")
    if problems:
        return problems
    entries = list(enumerate(schedule.entries))
    for position, (i, first) in enumerate(entries):
        for j, second in entries[position + 1 :]:
            if not _days_meet(first, second):
                continue
            times = _comparable(first.at, second.at)
            if times is None:
                continue
            one, two = times
            if zone_kind != "broadcast":
                if one == two and entry_state(first) != entry_state(second):
                    problems.append(
                        f"entries {first.label(i)} and {second.label(j)} set different states at the same moment"
                    )
                    continue
                for (a, x), (b, y), tb in (((i, first), (j, second), two), ((j, second), (i, first), one)):
                    if x.until is None or entry_state(x) == entry_state(y):
                        continue
                    span = _comparable(x.at, x.until)
                    if span is None:
                        continue
                    start, end = span
                    inside = start < tb < end if start < end else (tb > start or tb < end)
                    if inside:
                        problems.append(
                            f"entry {y.label(b)} falls inside the span of {x.label(a)} with a different state"
                        )
            else:
                if first.action == "play" and second.action == "play":
                    assert first.duration_s is not None and second.duration_s is not None
                    if one <= two < one + first.duration_s / 60 or two <= one < two + second.duration_s / 60:
                        problems.append(f"entries {first.label(i)} and {second.label(j)} play over each other")
                elif one == two and first.action != second.action:
                    problems.append(f"entries {first.label(i)} and {second.label(j)} play and stop at the same moment")
    return problems


def weekday_index(name: str) -> int:
    return WEEKDAYS.index(name)
