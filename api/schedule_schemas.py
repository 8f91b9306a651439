"""API shapes for zones, the calendar, schedules, overrides, emergency broadcasts and the command audit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.bounds import MAX_ROW_ID, Day, Moment
from houqin.schedules.calendar import DayType, Weekday
from houqin.schedules.model import ScheduleIn


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TermOut(_Out):
    name: str
    start: date
    end: date


class TermIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Day
    end: Day

    @model_validator(mode="after")
    def _ordered(self) -> TermIn:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class CalendarDayOut(BaseModel):
    date: date
    type: str
    timetable: Weekday = Field(description="the weekday whose timetable runs (a make-up day follows another)")
    note: str
    set_by_hand: bool


class CalendarOut(BaseModel):
    terms: list[TermOut]
    days: list[CalendarDayOut]


class CalendarDayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: DayType
    follows: Weekday | None = Field(default=None, description="a make-up working day (调休) runs this weekday")
    note: str = Field(default="", max_length=200)


class CalendarImportOut(BaseModel):
    terms: int
    days: int


class ScheduleOut(_Out):
    id: int
    name: str
    zone: str
    day_types: list[str]
    enabled: bool
    entries: list[dict[str, Any]]
    updated_at: datetime
    updated_by: str


class SegmentOut(BaseModel):
    start: datetime
    end: datetime
    state: str
    level: int | None
    layer: str
    cause: str


class SoundOut(BaseModel):
    start: datetime
    end: datetime
    action: str
    programme: str | None
    layer: str
    cause: str
    suppressed_by: str | None


class PreviewOut(BaseModel):
    zone: str
    kind: str
    start: datetime
    end: datetime
    segments: list[SegmentOut] = Field(description="lighting: the state held, and the layer and entry deciding it")
    sounds: list[SoundOut] = Field(description="broadcast: what plays, and what a higher layer suppresses")


class DraftPreviewIn(BaseModel):
    """A schedule not saved yet, previewed with the zone's other schedules, overrides and calendar."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schedule: ScheduleIn
    replaces: int | None = Field(default=None, ge=1, le=MAX_ROW_ID, description="the schedule being edited")
    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")


class FiringOut(_Out):
    id: int
    zone: str
    cause: str
    action: str
    due_at: datetime
    recorded_at: datetime
    outcome: str
    detail: str


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["on", "off", "dim", "stop", "limit"] = Field(
        description="lighting: on, off, dim; broadcast: stop (silence); dorm power: on, off (curfew), limit"
    )
    level: int | None = Field(default=None, ge=1, le=100)
    limit_w: int | None = Field(default=None, ge=50, le=100_000, description="limit: the rooms' power limit in W")
    until: Moment = Field(description="when the schedule takes over again (with a UTC offset)")
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _level(self) -> OverrideIn:
        if (self.action == "dim") != (self.level is not None):
            raise ValueError("level: dim needs a level (1-100), and only dim takes one")
        if (self.action == "limit") != (self.limit_w is not None):
            raise ValueError("limit_w: limit needs a power limit in W, and only limit takes one")
        return self

    @property
    def state_level(self) -> int | None:
        """What the override row keeps as its level: the dim level (%) or the power limit (W)."""
        return self.limit_w if self.action == "limit" else self.level


class _ManualSpanOut(_Out):
    id: int
    starts_at: datetime
    until: datetime
    requested_by: str
    reason: str
    ended_at: datetime | None
    ended_by: str | None


class OverrideOut(_ManualSpanOut):
    zone: str
    action: str
    level: int | None = Field(description="dim: the level in %; limit: the power limit in W")


class EmergencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    programme: str = Field(min_length=1, max_length=64, description="the stored programme or text id to play")
    zones: list[str] | None = Field(default=None, min_length=1, description="broadcast zones; default: all of them")
    duration_s: int = Field(ge=5, le=4 * 3600)
    reason: str = Field(default="", max_length=500)


class EmergencyOut(_ManualSpanOut):
    zones: list[str]
    programme: str


class OutputStateOut(BaseModel):
    device: str
    command: str
    last_action: str | None
    last_state: str | None = Field(description="queued, sent, confirmed, failed or superseded")
    last_at: datetime | None


class ZoneOut(BaseModel):
    id: str
    name: str
    kind: str
    default: str
    state: SegmentOut | None = Field(description="lighting: what the zone should hold now, and why")
    playing: SoundOut | None = Field(description="broadcast: what is playing now, if anything")
    override: OverrideOut | None
    emergency: int | None
    outputs: list[OutputStateOut]
    rooms: list[str] = Field(default_factory=list, description="dorm power: the rooms the zone switches")


class CommandAuditOut(_Out):
    id: int
    device: str
    command: str
    action: str
    arguments: dict[str, Any] | None
    state: str
    source: str
    reason: str
    requested_by: str
    zone: str | None
    correlation_id: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    deadline: datetime | None
    last_error: str
