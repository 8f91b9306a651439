"""Repair orders, their events and photos, and the faults the rules found."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class OrderStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class OrderSource(StrEnum):
    RULE = "rule"  # opened by a rule's fault
    MANUAL = "manual"  # reported by a person


class EventKind(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    STARTED = "started"
    NOTE = "note"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    CANCELLED = "cancelled"
    ESCALATED = "escalated"
    RATED = "rated"
    PHOTO = "photo"


class FaultState(StrEnum):
    PENDING = "pending"  # the condition holds, not yet for the rule's duration
    ACTIVE = "active"  # it lasted: the fault is real (and has its order)
    CLEARED = "cleared"


class RepairOrder(Base):
    """A job for a maintenance team: opened by a rule's fault or reported by a person, tracked to closure."""

    __tablename__ = "repair_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # R20261123-0007, for people
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[Priority] = mapped_column(StateColumn(Priority))
    building: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    floor: Mapped[int | None] = mapped_column(Integer, default=None)
    room: Mapped[str | None] = mapped_column(String(64), default=None)
    device: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    source: Mapped[OrderSource] = mapped_column(StateColumn(OrderSource))
    rule_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    status: Mapped[OrderStatus] = mapped_column(StateColumn(OrderStatus), index=True)
    team: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True, default=None
    )
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class RepairEvent(Base):
    """One step in a repair order's life, append-only: who did what, when."""

    __tablename__ = "repair_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("repair_orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[EventKind] = mapped_column(StateColumn(EventKind))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "houqin" for the system itself
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)  # the senders' window
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[OrderStatus] = mapped_column(StateColumn(OrderStatus))  # the order's status after this event


class RepairPhoto(Base):
    """A photo of the problem or of the repair, attached to an order by whoever may see it; kept in the SQL
    store with the order, so one backup holds both."""

    __tablename__ = "repair_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("repair_orders.id", ondelete="CASCADE"), index=True)
    uploaded_by: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class RepairCounter(Base):
    """The last number given on a (local) day, so order numbers are short, readable and never repeat."""

    __tablename__ = "repair_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)  # YYYYMMDD
    last: Mapped[int] = mapped_column(Integer, default=0)


class Fault(Base):
    """A rule's condition on one device: pending while it has not lasted the rule's duration, active once
    it has (then it has a repair order), cleared when the clear condition held. At most one fault per
    rule and device is not cleared: a unique index says so, across processes."""

    __tablename__ = "faults"
    __table_args__ = (
        Index(
            "uq_faults_open",
            "rule_id",
            "device",
            unique=True,
            sqlite_where=text("state != 'cleared'"),
            postgresql_where=text("state != 'cleared'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    device: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[FaultState] = mapped_column(StateColumn(FaultState), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(255))
    value: Mapped[float | None] = mapped_column(Float, default=None)  # what the condition saw
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    repair_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("repair_orders.id", ondelete="SET NULL"), index=True, default=None
    )


class NotificationDelivery(Base):
    """An event on its way to one robot or webhook: claimed by the process sending it (until
    ``not_before``), then sent, or given up after the last attempt. The events themselves are the outbox
    (``source``: ``repair`` for ``repair_events``, ``room`` for ``room_notices``, ``summary`` for a day's
    summary, numbered by its date): they are written in the transaction that makes them, so a crash loses
    no message."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (UniqueConstraint("source", "event_id", "hook"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[int] = mapped_column(Integer)
    hook: Mapped[str] = mapped_column(String(64))  # the webhook's key: its kind and a hash of its URL
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime())  # claimed, or waiting for its next attempt
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    gave_up: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str] = mapped_column(Text, default="")


class NotificationStart(Base):
    """The last event of a source before a webhook was first configured: it hears of what comes after."""

    __tablename__ = "notification_starts"

    hook: Mapped[str] = mapped_column(String(96), primary_key=True)  # the source and the webhook's key
    after_event: Mapped[int] = mapped_column(Integer)
