"""SQL tables. Domain modules add theirs here as they arrive; migrations in ``migrations/versions``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints so that migrations can alter them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both back ends (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a stored time must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(64), default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on a password change: tokens issued before it stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    rooms: Mapped[list[UserRoom]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin", order_by="UserRoom.room_id"
    )

    @property
    def room_ids(self) -> list[str]:
        return [link.room_id for link in self.rooms]


class UserRoom(Base):
    """A student (or parent) linked to a dorm room from the inventory."""

    __tablename__ = "user_rooms"
    __table_args__ = (UniqueConstraint("user_id", "room_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[str] = mapped_column(String(64), index=True)

    user: Mapped[User] = relationship(back_populates="rooms")


class RepairOrder(Base):
    """A job for a maintenance team: opened by a rule's fault or reported by a person, tracked to closure."""

    __tablename__ = "repair_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # R20261123-0007, for people
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    building: Mapped[str | None] = mapped_column(String(128), index=True, default=None)
    floor: Mapped[int | None] = mapped_column(Integer, default=None)
    room: Mapped[str | None] = mapped_column(String(64), default=None)
    device: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    source: Mapped[str] = mapped_column(String(16))  # rule | manual
    rule_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), index=True)
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
    kind: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    actor: Mapped[str] = mapped_column(String(64))  # a username, or "houqin" for the system itself
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # the order's status after this event


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
    state: Mapped[str] = mapped_column(String(16), index=True)  # pending | active | cleared
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(255))
    value: Mapped[float | None] = mapped_column(Float, default=None)  # what the condition saw
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    repair_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("repair_orders.id", ondelete="SET NULL"), index=True, default=None
    )


class DeviceCommand(Base):
    """A command to a device, a row before it is acted on: queued, sent, then confirmed by reading the
    device's state back, or failed after its attempts; superseded when a newer command for the same
    output replaced it before it was sent."""

    __tablename__ = "device_commands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)  # queued | sent | confirmed | failed | superseded
    source: Mapped[str] = mapped_column(String(16))  # rule | user | schedule | billing
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
    outcome: Mapped[str] = mapped_column(String(16))  # fired | missed | suppressed
    detail: Mapped[str] = mapped_column(Text, default="")


class SchedulerLease(Base):
    """Which process runs the scheduler (one per database), until when, and how far it has fired."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    fired_through: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class Wallet(Base):
    """A dorm room's prepaid balance; always the sum of its ledger entries."""

    __tablename__ = "wallets"

    room: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="normal")  # normal | low | cut_off
    # How many low-balance thresholds the balance is at or below: a warning goes out when this grows.
    low_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The balance reached the cut-off level inside the protected window: the cut waits for its end.
    cut_deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Over the power limit: the relay is off until then (whatever the balance), and how often it happened.
    tripped_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    trips: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LedgerEntry(Base):
    """One movement of a room's money, append-only, pointing to its cause; ``key`` makes it happen once."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # topup | charge | allowance | adjustment | refund
    amount_fen: Mapped[int] = mapped_column(Integer)  # signed: a charge is negative
    balance_after_fen: Mapped[int] = mapped_column(Integer)
    kwh: Mapped[float | None] = mapped_column(Float, default=None)
    cause: Mapped[str] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(Text, default="")
    key: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MeterBilling(Base):
    """Where billing stands on a room meter: the reading charged last, the sub-fen remainder carried to the
    next charge, and the free allowance used this month."""

    __tablename__ = "meter_billing"

    meter: Mapped[str] = mapped_column(String(64), primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    last_kwh: Mapped[float] = mapped_column(Float)
    carry_micro_fen: Mapped[int] = mapped_column(Integer, default=0)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, local
    free_used_kwh: Mapped[float] = mapped_column(Float, default=0.0)


class BillingEvent(Base):
    """Something billing noticed and did not charge: the first reading, a reset or replaced meter, a jump
    larger than the room could draw."""

    __tablename__ = "billing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    meter: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # first | reset | jump
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    before_kwh: Mapped[float | None] = mapped_column(Float, default=None)
    after_kwh: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")


class RoomNotice(Base):
    """What a room's students are told: a low balance, power cut (or to be cut when the protected window
    ends), restored, tripped by overload. Written in the transaction that caused it."""

    __tablename__ = "room_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(24))  # low_balance | cut_off | cut_deferred | restored | tripped | …
    balance_fen: Mapped[int | None] = mapped_column(Integer, default=None)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class PaymentOrder(Base):
    """A top-up a user asked for: created, then paid when the provider's verified notification arrives."""

    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("requested_by", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))  # created | paid | rejected
    requested_by: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    provider_trade_no: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class PaymentNotification(Base):
    """A verified notification from a payment provider, kept under its unique key in the transaction that
    credits the wallet: a replay or a concurrent duplicate finds it and credits nothing."""

    __tablename__ = "payment_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # provider:trade number
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    body: Mapped[str] = mapped_column(Text)
