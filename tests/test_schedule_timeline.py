"""The calendar, schedule validation, the sun, and precedence: what a zone does and why, without devices."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from astral import Observer
from astral.sun import sunrise, sunset

from houqin.config_file import ConfigError
from houqin.inventory import Inventory
from houqin.inventory.model import Site, Zone
from houqin.schedules.book import ScheduleBook
from houqin.schedules.calendar import SchoolCalendar, SpecialDay, Term, parse_calendar
from houqin.schedules.model import ScheduleIn, contradictions
from houqin.schedules.sun import sun_event
from houqin.schedules.timeline import Emergency, Override, ScheduleRow, ZoneTimeline

SHANGHAI = ZoneInfo("Asia/Shanghai")
LATITUDE, LONGITUDE = 30.2741, 120.1551  # the demo campus
SITE = Site(name="Demo", timezone="Asia/Shanghai", latitude=LATITUDE, longitude=LONGITUDE)
LIGHTS = Zone(id="corridor", kind="lighting", devices=["lights"])
BELLS = Zone(id="bells", kind="broadcast", devices=["pa"])

CALENDAR_FILE = """
terms:
  - {name: 2026 autumn, start: 2026-09-01, end: 2027-01-22}
days:
  - {date: 2026-10-01, until: 2026-10-07, type: holiday, note: National Day}
  - {date: 2026-10-10, type: school_day, follows: monday, note: make-up day}
  - {date: 2027-01-11, until: 2027-01-15, type: exam_day}
"""


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def calendar() -> SchoolCalendar:
    content = parse_calendar(CALENDAR_FILE)
    return SchoolCalendar(content.terms, {day.day: day for day in content.days})


def bells_timeline(*specs: ScheduleIn, start: str, end: str, **kwargs) -> ZoneTimeline:  # type: ignore[no-untyped-def]
    rows = [ScheduleRow(n + 1, spec) for n, spec in enumerate(specs)]
    return ZoneTimeline(BELLS, rows, calendar(), SITE, SHANGHAI, local(start), local(end), **kwargs)


TIMETABLES = [
    ScheduleIn.model_validate(
        {
            "name": "class bells",
            "zone": "bells",
            "day_types": ["school_day"],
            "entries": [
                {
                    "at": "07:30",
                    "action": "play",
                    "programme": "flag-raising",
                    "duration_s": 300,
                    "weekdays": ["monday"],
                },
                {"at": "08:00", "action": "play", "programme": "bell", "duration_s": 20},
            ],
        }
    ),
    ScheduleIn.model_validate(
        {
            "name": "exam bells",
            "zone": "bells",
            "day_types": ["exam_day"],
            "entries": [
                {"at": "08:30", "action": "play", "programme": "exam-start", "duration_s": 20},
            ],
        }
    ),
]


def test_day_types_terms_holidays_exams_and_make_up_days() -> None:
    cal = calendar()
    assert cal.resolve(date(2026, 9, 7)).day_type == "school_day"  # a Monday in term
    assert cal.resolve(date(2026, 9, 12)).day_type == "weekend"
    assert cal.resolve(date(2026, 10, 1)).day_type == "holiday"  # a Thursday
    made_up = cal.resolve(date(2026, 10, 10))  # a Saturday that runs as a Monday
    assert (made_up.day_type, made_up.weekday_name) == ("school_day", "monday")
    assert cal.resolve(date(2027, 1, 12)).day_type == "exam_day"
    assert cal.resolve(date(2027, 2, 1)).day_type == "vacation"  # between terms
    assert SchoolCalendar().resolve(date(2027, 2, 1)).day_type == "school_day"  # no terms: always in term


def test_a_make_up_saturday_runs_monday_a_holiday_none_an_exam_day_the_exam_timetable() -> None:
    def played(day: str) -> list[str]:
        timeline = bells_timeline(*TIMETABLES, start=f"{day}T00:00", end=f"{day}T23:59")
        return [s.programme or "" for s in timeline.sounds() if s.action == "play" and s.suppressed_by is None]

    assert played("2026-10-10") == ["flag-raising", "bell"]  # Saturday following Monday
    assert played("2026-10-09") == ["bell"]  # an ordinary Friday: no flag-raising
    assert played("2026-10-05") == []  # a Monday inside the National Day holiday
    assert played("2026-10-11") == []  # an ordinary Sunday
    assert played("2027-01-11") == ["exam-start"]  # a Monday of the exam week: exam timetable only


def test_calendar_file_errors_name_the_line_and_field() -> None:
    with pytest.raises(ConfigError) as error:
        parse_calendar(
            "terms:\n  - {name: a, start: 2026-09-01, end: 2026-08-01}\ndays:\n"
            "  - {date: 2026-10-01, type: Holiday}\n  - {date: 2026-10-02, type: holiday, follows: funday}\n"
        )
    text = str(error.value)
    assert "calendar.yaml:2: terms[0]: end 2026-08-01 is before start 2026-09-01" in text
    assert "calendar.yaml:4: days[0].type:" in text and "lowercase" in text
    assert "calendar.yaml:5: days[1].follows:" in text


def test_contradictory_entries_are_named() -> None:
    spec = ScheduleIn.model_validate(
        {
            "name": "s",
            "zone": "corridor",
            "entries": [
                {"at": "18:00", "action": "on", "name": "evening"},
                {"at": "18:00", "action": "off", "name": "saving"},
                {"at": "19:00", "until": "22:00", "action": "dim", "level": 40},
                {"at": "20:00", "action": "off", "weekdays": ["friday"]},
                {"at": "20:00", "action": "off", "dates": ["2026-12-24"]},  # one-off: above, not against
            ],
        }
    )
    problems = contradictions(spec, "lighting")
    assert problems == [
        "entries #1 'evening' (18:00 on) and #2 'saving' (18:00 off) set different states at the same moment",
        "entry #4 (20:00 off) falls inside the span of #3 (19:00 dim 40%) with a different state",
    ]
    bells = ScheduleIn.model_validate(
        {
            "name": "b",
            "zone": "bells",
            "entries": [
                {"at": "08:00", "action": "play", "programme": "bell", "duration_s": 120},
                {"at": "08:01", "action": "play", "programme": "music", "duration_s": 60},
            ],
        }
    )
    assert contradictions(bells, "broadcast") == [
        "entries #1 (08:00 play bell) and #2 (08:01 play music) play over each other"
    ]
    assert contradictions(bells, "lighting")[0].startswith("entry #1 (08:00 play bell): a lighting zone takes")


def test_dim_is_refused_for_zones_whose_circuits_cannot_dim(demo_inventory: Inventory) -> None:
    book = ScheduleBook(None, demo_inventory, SHANGHAI)  # type: ignore[arg-type]
    spec = ScheduleIn.model_validate(
        {"name": "s", "zone": "dorm-1-corridors", "entries": [{"at": "23:00", "action": "dim", "level": 30}]}
    )
    [problem] = book.problems(spec)
    assert "d1-f1-corridor-lights:circuit1 cannot dim" in problem
    assert book.problems(spec.model_copy(update={"zone": "library"})) == []  # MQTT lights dim
    assert book.problems(spec.model_copy(update={"zone": "nowhere"}))[0].startswith("zone: no zone 'nowhere'")


def test_sun_entries_need_the_sites_coordinates(demo_inventory: Inventory) -> None:
    nowhere = dataclasses.replace(demo_inventory, site=Site(name="No coordinates"))
    book = ScheduleBook(None, nowhere, SHANGHAI)  # type: ignore[arg-type]
    mixed = ScheduleIn.model_validate({"name": "s", "zone": "library", "entries": [
        {"at": "08:00", "action": "on"}, {"at": "sunset+10", "action": "off"}]})  # fmt: skip
    assert book.problems(mixed) == ["entries: sunrise/sunset need the site's latitude and longitude in the inventory"]
    clock_only = mixed.model_copy(update={"entries": mixed.entries[:1]})
    assert book.problems(clock_only) == []


def test_sunrise_and_sunset_at_the_demo_site_within_two_minutes_of_an_independent_almanac() -> None:
    """astral (an independent implementation of the NOAA/USNO method) for every day of 2026 at the demo
    campus's coordinates; plus the summer solstice sunset in Hangzhou (19:04 local in published tables)."""
    observer = Observer(LATITUDE, LONGITUDE)
    worst = timedelta(0)
    day = date(2026, 1, 1)
    while day.year == 2026:
        for name, reference in (("sunrise", sunrise), ("sunset", sunset)):
            ours = sun_event(day, LATITUDE, LONGITUDE, name)  # type: ignore[arg-type]
            assert ours is not None
            worst = max(worst, abs(ours - reference(observer, day, tzinfo=SHANGHAI)))
        day += timedelta(days=1)
    assert worst < timedelta(minutes=2)
    solstice = sun_event(date(2026, 6, 21), LATITUDE, LONGITUDE, "sunset")
    assert solstice is not None and solstice.astimezone(SHANGHAI).strftime("%H:%M") in {"19:03", "19:04", "19:05"}
    assert sun_event(date(2026, 6, 21), 78.2, 15.6, "sunset") is None  # Svalbard: midnight sun


def test_precedence_override_then_dated_then_regular_then_default() -> None:
    spec = ScheduleIn.model_validate(
        {
            "name": "outdoor",
            "zone": "corridor",
            "day_types": ["school_day", "weekend", "holiday", "exam_day", "vacation"],
            "entries": [
                {"at": "sunset+10", "action": "on"},
                {"at": "23:00", "action": "off"},
                {"at": "21:00", "until": "23:30", "action": "dim", "level": 60, "dates": ["2026-12-24"]},
            ],
        }
    )
    override = Override(7, "on", None, local("2026-12-25T22:00"), local("2026-12-25T23:30"))
    timeline = ZoneTimeline(
        LIGHTS,
        [ScheduleRow(1, spec)],
        calendar(),
        SITE,
        SHANGHAI,
        local("2026-12-24T12:00"),
        local("2026-12-26T12:00"),
        [override],
    )

    def at(text: str) -> tuple[str, str, str]:
        state, layer, cause = timeline.state_at(local(text))
        return str(state), layer, cause

    dusk = sun_event(date(2026, 12, 24), LATITUDE, LONGITUDE, "sunset")
    assert dusk is not None
    assert at("2026-12-24T12:00") == ("off", "regular", "schedule:1#2")  # carried over from last night
    assert timeline.state_at(dusk + timedelta(minutes=10))[0].action == "on"
    assert at("2026-12-24T21:30") == ("dim 60%", "dated", "schedule:1#3")  # Christmas Eve: one-off above
    assert at("2026-12-24T23:15") == ("dim 60%", "dated", "schedule:1#3")  # ...over the regular 23:00 off
    assert at("2026-12-24T23:30") == ("off", "regular", "schedule:1#2")  # the span ends: regular shows again
    assert at("2026-12-25T22:30") == ("on", "override", "override:7")
    assert at("2026-12-25T23:30") == ("off", "regular", "schedule:1#2")  # the override expired
    empty = ZoneTimeline(LIGHTS, [], calendar(), SITE, SHANGHAI, local("2026-12-24T00:00"), local("2026-12-25T00:00"))
    assert empty.state_at(local("2026-12-24T20:00"))[1:] == ("default", "default")
    segments = timeline.segments()
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))
    assert segments[0].start == local("2026-12-24T12:00") and segments[-1].end == local("2026-12-26T12:00")


def test_an_emergency_suppresses_the_bells_inside_it_and_a_dated_programme_the_regular_one() -> None:
    one_off = ScheduleIn.model_validate(
        {
            "name": "ceremony",
            "zone": "bells",
            "entries": [
                {"at": "08:00", "action": "play", "programme": "anthem", "duration_s": 180, "dates": ["2026-09-07"]},
            ],
        }
    )
    emergency = Emergency(3, "evacuate", local("2026-09-08T07:59"), local("2026-09-08T08:05"))
    timeline = bells_timeline(
        *TIMETABLES, one_off, start="2026-09-07T00:00", end="2026-09-09T00:00", emergencies=[emergency]
    )
    sounds = [
        (s.start.astimezone(SHANGHAI).strftime("%d %H:%M"), s.action, s.programme, s.suppressed_by)
        for s in timeline.sounds()
    ]
    assert sounds == [
        ("07 07:30", "play", "flag-raising", None),
        ("07 08:00", "play", "anthem", None),
        ("07 08:00", "play", "bell", "schedule:3#1"),  # the ceremony's anthem, not the bell
        ("08 07:59", "play", "evacuate", None),
        ("08 08:00", "play", "bell", "emergency:3"),
        ("08 08:05", "stop", None, None),  # the emergency's end silences the zone: the bell does not resume
    ]


def test_schedule_seed_file_errors_name_the_line(tmp_path: Path) -> None:
    from houqin.schedules.book import load_schedule_file

    path = tmp_path / "schedules.yaml"
    path.write_text(
        "schedules:\n  - name: a\n    zone: library\n    entries:\n      - {at: '25:00', action: 'on'}\n"
        "  - name: a\n    zone: library\n    entries: [{at: sunset+10, action: dim}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_schedule_file(path)
    text = str(error.value)
    assert f"{path}:5: schedules[0].entries[0].at:" in text and "'25:00' is not a time of day" in text
    assert f"{path}:8: schedules[1].entries[0].level: dim needs a level" in text


def test_special_days_and_terms_are_plain_values() -> None:
    assert date(2026, 9, 1) in Term("t", date(2026, 9, 1), date(2026, 9, 2))
    assert SpecialDay(date(2026, 10, 10), "school_day", 0).follows == 0
    assert datetime(2026, 1, 1, tzinfo=UTC)  # keeps the UTC import honest for type checkers
