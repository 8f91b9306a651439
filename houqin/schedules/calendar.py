"""The school calendar: what kind of day a date is, and which weekday's timetable it runs.

A date set by hand wins (a holiday, an exam day, a make-up working day — 调休 — that follows another
weekday's timetable, or a site-defined type such as ``sports_day``). Otherwise, inside a term a weekday is a
``school_day`` and Saturday and Sunday are ``weekend``; outside every term a day is ``vacation``. A site
with no terms at all is always in term.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from houqin.config_file import ConfigError, ConfigIssue, LocatedDocument, load_document, parse_document

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
BUILTIN_DAY_TYPES = ("school_day", "weekend", "holiday", "exam_day", "vacation")


def _day_type(value: str) -> str:
    if not value or len(value) > 32 or not value.replace("_", "").isalnum() or not value[0].isalpha():
        raise ValueError(f"a day type is a lowercase word like school_day or sports_day, got {value!r}")
    if value != value.lower():
        raise ValueError(f"day types are lowercase, got {value!r}")
    return value


DayType = Annotated[str, AfterValidator(_day_type)]


@dataclass(frozen=True)
class Term:
    name: str
    start: date
    end: date  # inclusive

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@dataclass(frozen=True)
class SpecialDay:
    day: date
    day_type: str
    follows: int | None = None  # the weekday (0 = Monday) whose timetable a make-up day runs
    note: str = ""


@dataclass(frozen=True)
class ResolvedDay:
    day: date
    day_type: str
    weekday: int  # the timetable's weekday: the date's own, or the one a make-up day follows
    note: str
    set_by_hand: bool

    @property
    def weekday_name(self) -> str:
        return WEEKDAYS[self.weekday]


class SchoolCalendar:
    def __init__(self, terms: Iterable[Term] = (), days: Mapping[date, SpecialDay] | None = None) -> None:
        self.terms = sorted(terms, key=lambda term: term.start)
        self.days = dict(days or {})

    def resolve(self, day: date) -> ResolvedDay:
        special = self.days.get(day)
        if special is not None:
            weekday = special.follows if special.follows is not None else day.weekday()
            return ResolvedDay(day, special.day_type, weekday, special.note, True)
        if self.terms and not any(day in term for term in self.terms):
            return ResolvedDay(day, "vacation", day.weekday(), "", False)
        return ResolvedDay(day, "weekend" if day.weekday() >= 5 else "school_day", day.weekday(), "", False)

    def span(self, first: date, last: date) -> list[ResolvedDay]:
        """Every day from ``first`` to ``last`` inclusive."""
        return [self.resolve(first + timedelta(days=n)) for n in range((last - first).days + 1)]


# --- the calendar file: terms and hand-set days, for import ----------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TermIn(_Strict):
    name: str = Field(min_length=1, max_length=64)
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


_Date = date  # the field below is named "date", as people write it


class DayIn(_Strict):
    """One date, or a range with ``until`` (inclusive), of one day type."""

    date: _Date
    until: _Date | None = None
    type: DayType
    follows: Weekday | None = Field(default=None, description="a make-up day runs this weekday's timetable")
    note: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.until is not None and self.until < self.date:
            raise ValueError(f"until {self.until} is before date {self.date}")
        if self.until is not None and (self.until - self.date).days > 366:
            raise ValueError("a range of days is at most a year")
        return self

    def special_days(self) -> list[SpecialDay]:
        last = self.until or self.date
        follows = WEEKDAYS.index(self.follows) if self.follows is not None else None
        return [
            SpecialDay(self.date + timedelta(days=n), self.type, follows, self.note)
            for n in range((last - self.date).days + 1)
        ]


class CalendarFile(_Strict):
    terms: list[TermIn] = Field(default_factory=list)
    days: list[DayIn] = Field(default_factory=list)


@dataclass(frozen=True)
class CalendarImport:
    terms: list[Term]
    days: list[SpecialDay]


def _from_document(document: LocatedDocument) -> CalendarImport:
    issues = list(document.issues)
    if not issues and document.data is not None and not isinstance(document.data, dict):
        issues.append(ConfigIssue(document.file, 1, "", "a calendar file is a mapping with terms and days"))
    parsed: CalendarFile | None = None
    if not issues:
        try:
            parsed = CalendarFile.model_validate(document.data or {})
        except ValidationError as exc:
            issues.extend(document.validation_issues(exc))
    if parsed is not None:
        seen: dict[date, int] = {}
        for index, item in enumerate(parsed.days):
            for special in item.special_days():
                if special.day in seen:
                    issues.append(
                        document.issue(("days", index), f"{special.day} is already set by days[{seen[special.day]}]")
                    )
                seen.setdefault(special.day, index)
        names = [term.name for term in parsed.terms]
        for index, name in enumerate(names):
            if name in names[:index]:
                issues.append(document.issue(("terms", index, "name"), f"term {name!r} is given twice"))
    if issues or parsed is None:
        raise ConfigError(issues)
    return CalendarImport(
        [Term(term.name, term.start, term.end) for term in parsed.terms],
        [special for item in parsed.days for special in item.special_days()],
    )


def parse_calendar(text: str, name: str = "calendar.yaml") -> CalendarImport:
    """A calendar file's terms and days; every mistake named by line and field (``ConfigError``)."""
    return _from_document(parse_document(text, name))


def load_calendar_file(path: Path) -> CalendarImport:
    return _from_document(load_document(path))
