"""Who lives in a shared room, and what each one used: the month's usage split by bed-days, the statement
a student takes away at move-out, and the year-end refund of what is left in the wallet.

A stay runs from the day a student moved in (counted) to the day they moved out (not counted), as a hotel
counts nights. Each day's kWh and cost are split evenly between the stays that cover it; a day nobody
covers is the room's own (``vacant``: it still comes out of the one wallet the roommates share). Shares
are whole fen and 0.001 kWh; a day's remainder goes one unit at a time to its stays in an order that moves
with the day, so nobody is favoured, and the shares add up exactly to the room's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.statement import DayTotals, MonthStatement, month_statement
from houqin.inventory.model import Room, Tariff
from houqin.store.tables import PaymentOrder, PaymentState, RoomStay, User, UserRoom


class StayError(ValueError):
    """A move-in or move-out that cannot be: the bed taken, the student living elsewhere, a date that
    makes no sense. ``conflict``: it clashes with what is recorded (409) rather than being malformed (422)."""

    def __init__(self, message: str, conflict: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True)
class Stay:
    id: int
    student: str
    bed: int
    moved_in: date
    moved_out: date | None

    def covers(self, day: date) -> bool:
        return self.moved_in <= day and (self.moved_out is None or day < self.moved_out)


@dataclass
class StayShare:
    """One stay's part of a month (``stay`` None: the days nobody covered)."""

    stay: Stay | None
    bed_days: int = 0
    kwh_milli: int = 0
    cost_fen: int = 0

    @property
    def kwh(self) -> float:
        return self.kwh_milli / 1000


def _split(total: int, count: int, turn: int) -> list[int]:
    base, left = divmod(total, count)
    return [base + (1 if (index - turn) % count < left else 0) for index in range(count)]


def bed_day_shares(days: Sequence[DayTotals], stays: Sequence[Stay]) -> list[StayShare]:
    """Each stay's share of ``days`` (and the vacant days' as the last share), adding up to their total."""
    shares = {stay.id: StayShare(stay) for stay in stays}
    vacant = StayShare(None)
    for totals in days:
        present = [shares[stay.id] for stay in stays if stay.covers(totals.day)]
        kwh_milli = round((totals.kwh_charged + totals.kwh_free) * 1000)
        if not present:
            vacant.kwh_milli += kwh_milli
            vacant.cost_fen += totals.charged_fen
            continue
        turn = totals.day.toordinal()
        for share, fen, milli in zip(present, _split(totals.charged_fen, len(present), turn),
                                     _split(kwh_milli, len(present), turn), strict=True):  # fmt: skip
            share.cost_fen += fen
            share.kwh_milli += milli
    for share in shares.values():
        assert share.stay is not None
        share.bed_days = sum(1 for totals in days if share.stay.covers(totals.day))
    return [*shares.values(), vacant]


def month_days(month: str) -> list[date]:
    year, number = (int(part) for part in month.split("-"))
    first = date(year, number, 1)
    following = date(year + number // 12, number % 12 + 1, 1)
    return [date.fromordinal(ordinal) for ordinal in range(first.toordinal(), following.toordinal())]


def bed_days_in(stay: Stay, month: str) -> int:
    return sum(1 for day in month_days(month) if stay.covers(day))


async def room_stays(session: AsyncSession, room: str, month: str | None = None) -> list[Stay]:
    """The room's stays (those touching ``month`` if given), oldest first."""
    rows = await session.execute(
        select(RoomStay, User.username).join(User, User.id == RoomStay.user_id)
        .where(RoomStay.room == room).order_by(RoomStay.moved_in, RoomStay.id)
    )  # fmt: skip
    stays = [Stay(row.id, username, row.bed, row.moved_in, row.moved_out) for row, username in rows.all()]
    if month is None:
        return stays
    return [stay for stay in stays if bed_days_in(stay, month) > 0]


@dataclass
class MonthPart:
    month: str
    bed_days: int
    kwh: float
    cost_fen: int


@dataclass
class StayStatement:
    """What a student used and paid while they lived in the room."""

    stay: Stay
    room: str
    months: list[MonthPart] = field(default_factory=list)
    paid_fen: int = 0  # their own top-ups while they lived there

    @property
    def used_fen(self) -> int:
        return sum(part.cost_fen for part in self.months)


def months_between(first: date, last: date) -> list[str]:
    months, year, number = [], first.year, first.month
    while (year, number) <= (last.year, last.month):
        months.append(f"{year:04d}-{number:02d}")
        year, number = year + number // 12, number % 12 + 1
    return months


async def stay_statement(
    session: AsyncSession, room: Room, tariff: Tariff, stay: Stay, today: date, timezone: ZoneInfo
) -> StayStatement:
    """Month by month from the move-in to the move-out (or today), the stay's bed-day share; and what the
    student paid into the room meanwhile."""
    last = stay.moved_out or today
    statement = StayStatement(stay, room.id)
    for month in months_between(stay.moved_in, max(last, stay.moved_in)):
        days = (await month_statement(session, room, tariff, month, timezone)).days
        stays = await room_stays(session, room.id, month)
        mine = next((share for share in bed_day_shares(days, stays) if share.stay and share.stay.id == stay.id), None)
        if mine is not None:
            statement.months.append(MonthPart(month, mine.bed_days, mine.kwh, mine.cost_fen))
    start = datetime.combine(stay.moved_in, time(), timezone)
    paid = select(PaymentOrder.amount_fen).where(
        PaymentOrder.room == room.id, PaymentOrder.requested_by == stay.student,
        PaymentOrder.state == PaymentState.PAID, PaymentOrder.paid_at >= start,
    )  # fmt: skip
    if stay.moved_out is not None:
        paid = paid.where(PaymentOrder.paid_at < datetime.combine(stay.moved_out, time(), timezone))
    statement.paid_fen = sum((await session.execute(paid)).scalars())
    return statement


async def month_shares(
    session: AsyncSession, room: Room, tariff: Tariff, month: str, timezone: ZoneInfo
) -> tuple[MonthStatement, list[StayShare]]:
    statement = await month_statement(session, room, tariff, month, timezone)
    return statement, bed_day_shares(statement.days, await room_stays(session, room.id, month))


async def move_in(
    session: AsyncSession, room: Room, student: User, bed: int, day: date, today: date, by: str, note: str = ""
) -> RoomStay:
    """Record ``student`` on ``bed`` of ``room`` from ``day``, and give them the room's pages."""
    if not 1 <= bed <= room.beds:
        raise StayError(f"bed: room {room.id} has beds 1 to {room.beds}, not {bed}")
    if day > today:
        raise StayError(f"moved_in: {day} is in the future; record a move-in on the day it happens")
    current = (await session.execute(
        select(RoomStay).where(RoomStay.user_id == student.id, RoomStay.moved_out.is_(None))
    )).scalar()  # fmt: skip
    if current is not None:
        raise StayError(f"{student.username} lives in room {current.room} (bed {current.bed}) since "
                        f"{current.moved_in}: record the move-out first", conflict=True)  # fmt: skip
    taken = (await session.execute(
        select(RoomStay, User.username).join(User, User.id == RoomStay.user_id)
        .where(RoomStay.room == room.id, RoomStay.bed == bed)
        .where(RoomStay.moved_out.is_(None) | (RoomStay.moved_out > day))
    )).first()  # fmt: skip
    if taken is not None:
        other, name = taken
        until = f" until {other.moved_out}" if other.moved_out else ""
        raise StayError(f"bed {bed} of room {room.id} is {name}'s from {other.moved_in}{until}", conflict=True)
    stay = RoomStay(room=room.id, user_id=student.id, bed=bed, moved_in=day, moved_in_by=by, note=note)
    try:
        async with session.begin_nested():
            session.add(stay)
            await session.flush()
    except IntegrityError:
        # Another move-in of this bed or this student committed between the checks above and here.
        raise StayError(f"bed {bed} of room {room.id} or {student.username} was just given a stay by someone "
                        "else: reload and check", conflict=True) from None  # fmt: skip
    linked = await session.execute(
        select(UserRoom.id).where(UserRoom.user_id == student.id, UserRoom.room_id == room.id)
    )
    if linked.scalar() is None:
        session.add(UserRoom(user_id=student.id, room_id=room.id))
    await session.flush()
    return stay


async def move_out(session: AsyncSession, stay: RoomStay, day: date, today: date, by: str, note: str = "") -> None:
    """End ``stay`` on ``day`` (not counted); the student no longer sees the room (their statement stays
    theirs)."""
    if stay.moved_out is not None:
        raise StayError(f"stay {stay.id} ended on {stay.moved_out}", conflict=True)
    if day < stay.moved_in:
        raise StayError(f"moved_out: {day} is before the move-in on {stay.moved_in}")
    if day > today:
        raise StayError(f"moved_out: {day} is in the future; record a move-out on the day it happens")
    stay.moved_out, stay.moved_out_by = day, by
    stay.note = "; ".join(filter(None, [stay.note, note]))
    await session.execute(delete(UserRoom).where(UserRoom.user_id == stay.user_id, UserRoom.room_id == stay.room))
