"""Prepaid electricity: wallets and their ledger, where metering stands, what it noticed, and what rooms
were told."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class WalletState(StrEnum):
    NORMAL = "normal"
    LOW = "low"  # at or below a low-balance threshold
    CUT_OFF = "cut_off"  # power cut for money


class EntryKind(StrEnum):
    TOPUP = "topup"
    CHARGE = "charge"
    ALLOWANCE = "allowance"
    ADJUSTMENT = "adjustment"
    REFUND = "refund"


class BillingEventKind(StrEnum):
    FIRST = "first"  # the first reading of a meter: nothing to charge yet
    RESET = "reset"  # the meter went backwards (replaced or reset)
    JUMP = "jump"  # it advanced faster than the room can draw


class NoticeKind(StrEnum):
    LOW_BALANCE = "low_balance"
    CUT_OFF = "cut_off"
    CUT_DEFERRED = "cut_deferred"
    RESTORED = "restored"
    TRIPPED = "tripped"
    TRIP_RESTORED = "trip_restored"
    APPLIANCE = "appliance"  # a high-power appliance was detected: power off for a while
    LOCKED = "locked"  # tripped too often: off until staff unlock it
    UNLOCKED = "unlocked"


class PowerEventKind(StrEnum):
    APPLIANCE_TRIP = "appliance_trip"
    LOCKED = "locked"
    UNLOCKED = "unlocked"


class Wallet(Base):
    """A dorm room's prepaid balance; always the sum of its ledger entries."""

    __tablename__ = "wallets"

    room: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance_fen: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[WalletState] = mapped_column(StateColumn(WalletState), default=WalletState.NORMAL)
    # How many low-balance thresholds the balance is at or below: a warning goes out when this grows.
    low_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The balance reached the cut-off level inside the protected window: the cut waits for its end.
    cut_deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Over the power limit: the relay is off until then (whatever the balance), and how often it happened.
    tripped_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    trips: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Tripped by appliances too often: off, whatever the balance, until staff unlock it (with a reason).
    locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Inside the room's curfew (dorm power off at night by the school's schedule): off, but not for money.
    curfew: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A lower power limit in force by the school's schedule (at night, instead of a cut); None: the room's own.
    night_limit_w: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LedgerEntry(Base):
    """One movement of a room's money, append-only, pointing to its cause; ``key`` makes it happen once."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[EntryKind] = mapped_column(StateColumn(EntryKind))
    amount_fen: Mapped[int] = mapped_column(Integer)  # signed: a charge is negative
    balance_after_fen: Mapped[int] = mapped_column(Integer)
    kwh: Mapped[float | None] = mapped_column(Float, default=None)
    cause: Mapped[str] = mapped_column(String(255))
    note: Mapped[str] = mapped_column(Text, default="")
    key: Mapped[str] = mapped_column(String(255), unique=True)
    # The room's circuit a charge or allowance is for (lights, sockets, AC); None: the room as a whole.
    circuit: Mapped[str | None] = mapped_column(String(64), nullable=True, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MeterBilling(Base):
    """Where billing stands on an energy register of a room (``meter``: the meter, or ``meter#field`` for
    one circuit of a multi-circuit meter): the reading charged last, the sub-fen remainder carried to the
    next charge, and the local month of that reading."""

    __tablename__ = "meter_billing"

    meter: Mapped[str] = mapped_column(String(160), primary_key=True)
    room: Mapped[str] = mapped_column(String(64))
    last_ts: Mapped[datetime] = mapped_column(UtcDateTime())
    last_kwh: Mapped[float] = mapped_column(Float)
    carry_micro_fen: Mapped[int] = mapped_column(Integer, default=0)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, local


class RoomAllowance(Base):
    """A room's free allowance used, per pool: ``""`` for the room's own tariff, else a circuit's tariff.
    Circuits on one tariff share one allowance; the previous month's figure is kept for a window that
    crosses the month after another circuit already moved the pool on."""

    __tablename__ = "room_allowances"

    room: Mapped[str] = mapped_column(String(64), primary_key=True)
    pool: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, local
    used_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    last_month: Mapped[str | None] = mapped_column(String(7), nullable=True, default=None)
    last_used_kwh: Mapped[float] = mapped_column(Float, default=0.0)


class BillingEvent(Base):
    """Something billing noticed and did not charge: the first reading, a reset or replaced meter, a jump
    larger than the room could draw."""

    __tablename__ = "billing_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    meter: Mapped[str] = mapped_column(String(64))
    kind: Mapped[BillingEventKind] = mapped_column(StateColumn(BillingEventKind))
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
    kind: Mapped[NoticeKind] = mapped_column(StateColumn(NoticeKind, 24))
    balance_fen: Mapped[int | None] = mapped_column(Integer, default=None)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)  # senders' window


class RoomPowerEvent(Base):
    """What the power policy did to a room and why: an appliance trip (with what was seen and when power
    returns), a lock, an unlock (by whom, why). Counting a room's recent trips reads these."""

    __tablename__ = "room_power_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[PowerEventKind] = mapped_column(StateColumn(PowerEventKind, 24))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    reason: Mapped[str] = mapped_column(Text)
    step_w: Mapped[float | None] = mapped_column(Float, default=None)
    power_factor: Mapped[float | None] = mapped_column(Float, default=None)
    restore_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)  # None: staff restore it
    by: Mapped[str | None] = mapped_column(String(64), default=None)  # who unlocked


class RoomStay(Base):
    """A student on a bed of a room from the day they moved in (counted) to the day they moved out (not
    counted): what the room's usage is split by (bed-days), and what a leaving student's statement covers."""

    __tablename__ = "room_stays"
    # One open stay per bed and per student, held by the database: two staff recording a move-in at
    # once cannot both pass the check in ``move_in``.
    __table_args__ = (
        Index("uq_room_stays_open_bed", "room", "bed", unique=True,
              sqlite_where=text("moved_out IS NULL"), postgresql_where=text("moved_out IS NULL")),
        Index("uq_room_stays_open_user", "user_id", unique=True,
              sqlite_where=text("moved_out IS NULL"), postgresql_where=text("moved_out IS NULL")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    bed: Mapped[int] = mapped_column(Integer)
    moved_in: Mapped[date] = mapped_column(Date)
    moved_out: Mapped[date | None] = mapped_column(Date, default=None)
    moved_in_by: Mapped[str] = mapped_column(String(64))
    moved_out_by: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str] = mapped_column(Text, default="")


class OpeningAllowance(Base):
    """The free allowance a room had used this month in the previous prepaid system, imported with its
    balance: houqin's billing starts the month from it, so nobody gets the month's free kWh twice."""

    __tablename__ = "opening_allowances"

    room: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, local
    free_used_kwh: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
