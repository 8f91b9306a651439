"""A room's month in money and energy: the opening and closing balance, what came in (top-ups, refunds,
adjustments) and went out (charges), the kWh charged and the kWh taken from the free allowance, and the
same per local day. The wallet summary and the monthly statement are both read from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.inventory.model import Room, Tariff
from houqin.store.tables import EntryKind, LedgerEntry


@dataclass
class DayTotals:
    day: date
    kwh_charged: float = 0.0
    kwh_free: float = 0.0
    charged_fen: int = 0  # spent on electricity (positive)
    topups_fen: int = 0
    refunds_fen: int = 0
    adjustments_fen: int = 0
    closing_fen: int = 0


@dataclass
class CircuitTotals:
    """A circuit's month: what was charged on its tariff, and taken from the free allowance."""

    kwh_charged: float = 0.0
    kwh_free: float = 0.0
    charged_fen: int = 0


@dataclass
class MonthStatement:
    room: str
    month: str  # YYYY-MM, local
    tariff: str
    opening_fen: int
    closing_fen: int
    free_kwh_allowance: float
    days: list[DayTotals] = field(default_factory=list)
    circuits: dict[str, CircuitTotals] = field(default_factory=dict)  # a room with circuits: by circuit id

    def total(self, name: str) -> float:
        return float(sum(getattr(day, name) for day in self.days))

    @property
    def kwh_charged(self) -> float:
        return round(self.total("kwh_charged"), 3)

    @property
    def kwh_free(self) -> float:
        return round(self.total("kwh_free"), 3)

    @property
    def charged_fen(self) -> int:
        return int(self.total("charged_fen"))

    @property
    def free_kwh_left(self) -> float:
        return round(max(0.0, self.free_kwh_allowance - self.total("kwh_free")), 3)


def month_bounds(month: str, timezone: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of the local month and of the next one. ``month`` is ``YYYY-MM``."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone)
    except ValueError:
        raise ValueError(f"month {month!r} is not YYYY-MM") from None
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


async def month_statement(
    session: AsyncSession, room: Room, tariff: Tariff, month: str, timezone: ZoneInfo
) -> MonthStatement:
    start, end = month_bounds(month, timezone)
    before = select(LedgerEntry.balance_after_fen).where(LedgerEntry.room == room.id, LedgerEntry.created_at < start)
    opening = (await session.execute(before.order_by(LedgerEntry.id.desc()).limit(1))).scalar() or 0
    statement = MonthStatement(room=room.id, month=month, tariff=room.tariff, opening_fen=opening,
                               closing_fen=opening, free_kwh_allowance=tariff.free_kwh(room.beds))  # fmt: skip
    rows = await session.execute(
        select(LedgerEntry.created_at, LedgerEntry.kind, LedgerEntry.amount_fen, LedgerEntry.kwh,
               LedgerEntry.balance_after_fen, LedgerEntry.circuit)
        .where(LedgerEntry.room == room.id, LedgerEntry.created_at >= start, LedgerEntry.created_at < end)
        .order_by(LedgerEntry.id)
    )  # fmt: skip
    days: dict[date, DayTotals] = {}
    statement.circuits = {circuit.id: CircuitTotals() for circuit in room.circuits}
    for created_at, kind, amount, kwh, balance_after, circuit_id in rows:
        day = created_at.astimezone(timezone).date()
        totals = days.get(day) or days.setdefault(day, DayTotals(day))
        circuit = statement.circuits.get(circuit_id or "")
        if kind == EntryKind.CHARGE:
            totals.charged_fen -= amount
            totals.kwh_charged += kwh or 0.0
            if circuit is not None:
                circuit.charged_fen -= amount
                circuit.kwh_charged += kwh or 0.0
        elif kind == EntryKind.ALLOWANCE:
            totals.kwh_free += kwh or 0.0
            if circuit is not None:
                circuit.kwh_free += kwh or 0.0
        elif kind == EntryKind.TOPUP:
            totals.topups_fen += amount
        elif kind == EntryKind.REFUND:
            totals.refunds_fen += amount
        else:
            totals.adjustments_fen += amount
        totals.closing_fen = statement.closing_fen = balance_after
    statement.days = [days[day] for day in sorted(days)]
    for totals in statement.days:
        totals.kwh_charged, totals.kwh_free = round(totals.kwh_charged, 3), round(totals.kwh_free, 3)
    return statement
