"""Device commands: a row before anything is sent, then its life to confirmation or failure."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class CommandState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    CONFIRMED = "confirmed"  # the device's state, read back, says it was done
    FAILED = "failed"  # after its attempts, or past its deadline
    SUPERSEDED = "superseded"  # a newer command for the same output came first


class CommandSource(StrEnum):
    USER = "user"  # staff through the API
    RULE = "rule"
    BILLING = "billing"  # prepaid cut-off and restore, overload trips
    SCHEDULE = "schedule"
    OVERRIDE = "override"
    EMERGENCY = "emergency"
    RECONCILE = "reconcile"  # the scheduler putting a zone back in the state its timetable says


FINISHED_COMMAND = (CommandState.CONFIRMED, CommandState.FAILED, CommandState.SUPERSEDED)


class DeviceCommand(Base):
    """A command to a device, a row before it is acted on: queued, sent, then confirmed by reading the
    device's state back, or failed after its attempts; superseded when a newer command for the same
    output replaced it before it was sent."""

    __tablename__ = "device_commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    state: Mapped[CommandState] = mapped_column(StateColumn(CommandState), index=True)
    source: Mapped[CommandSource] = mapped_column(StateColumn(CommandSource))
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(64))
    key: Mapped[str | None] = mapped_column(String(128), unique=True, default=None)  # makes a request idempotent
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    # What the action needs (a dim level, a programme and its duration), as JSON.
    arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Sent with an MQTT command and echoed by the device in the state that confirms it.
    correlation_id: Mapped[str] = mapped_column(String(36), default="")
    # Not sent after this instant (a bell ten minutes late is worse than none); retries stop there too.
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    zone: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
