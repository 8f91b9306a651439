"""The school calendar, the zones' schedules, manual overrides and emergency broadcasts, what the scheduler
fired, and which process runs it."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class FiringOutcome(StrEnum):
    FIRED = "fired"  # its commands were queued
    MISSED = "missed"  # houqin was not running at the time; a bell is not rung late
    SUPPRESSED = "suppressed"  # a higher layer (an override, an emergency) held the zone


class CalendarTerm(Base):
    """A school term: inside one, weekdays are school days; outside every term, days are vacation."""

    __tablename__ = "calendar_terms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)


class CalendarDay(Base):
    """A date whose day type is set by hand: a holiday, an exam day, a make-up working day (调休) and the
    weekday timetable it follows."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    day_type: Mapped[str] = mapped_column(String(32))
    follows: Mapped[int | None] = mapped_column(Integer, default=None)  # 0 = Monday
    note: Mapped[str] = mapped_column(Text, default="")


class Schedule(Base):
    """A zone's timetable for some day types; its entries (validated JSON) fire at times of day, on dates,
    or relative to sunrise and sunset."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    zone: Mapped[str] = mapped_column(String(64), index=True)
    day_types: Mapped[list[str]] = mapped_column(JSON)
    entries: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class ManualSpan:
    """Who set something by hand, why, from when until when, and who ended it early."""

    starts_at: Mapped[datetime] = mapped_column(UtcDateTime())
    until: Mapped[datetime] = mapped_column(UtcDateTime())
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    ended_by: Mapped[str | None] = mapped_column(String(64), default=None)


class ZoneOverride(ManualSpan, Base):
    """A manual state for a zone until an expiry ("keep the library lights on until 23:30")."""

    __tablename__ = "zone_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(16))  # on | off | dim | stop
    level: Mapped[int | None] = mapped_column(Integer, default=None)


class EmergencyBroadcast(ManualSpan, Base):
    """A programme played in broadcast zones now, above every schedule and override, until it ends."""

    __tablename__ = "emergency_broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zones: Mapped[list[str]] = mapped_column(JSON)
    programme: Mapped[str] = mapped_column(String(64))


class ScheduleFiring(Base):
    """What the scheduler did at a due time for a zone: fired (commands queued), missed (houqin was not
    running; a bell is not rung late), or suppressed (a higher layer held the zone)."""

    __tablename__ = "schedule_firings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)  # zone + cause + due time: fired once
    zone: Mapped[str] = mapped_column(String(64), index=True)
    cause: Mapped[str] = mapped_column(String(96))  # schedule:<id>#<entry> | override:<id> | emergency:<id> | reconcile
    action: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    outcome: Mapped[FiringOutcome] = mapped_column(StateColumn(FiringOutcome))
    detail: Mapped[str] = mapped_column(Text, default="")


class SchedulerLease(Base):
    """Which process runs the scheduler (one per database), until when, and how far it has fired."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    fired_through: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class HouqinProcess(Base):
    """A houqin process on this database: what it runs and when it was last heard of."""

    __tablename__ = "houqin_processes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    roles: Mapped[str] = mapped_column(String(255))
    files: Mapped[str] = mapped_column(Text)  # JSON: file -> SHA-256
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class GatewayLease(Base):
    """Which collecting process polls and commands a gateway (one at a time), until when (database time)."""

    __tablename__ = "gateway_leases"

    gateway: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32), default="")  # a houqin_processes id; "": nobody
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    since: Mapped[datetime] = mapped_column(UtcDateTime())
