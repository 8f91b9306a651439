"""Shared rooms: who lives on which bed, the month split between them, a leaving student's statement, and
the year-end refund. Staff record moves; roommates see the split; a student keeps their own statement
after they have left."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from sqlalchemy import select

from api.bounds import MAX_ROW_ID, MONTH_PATTERN
from api.deps import (
    AccessibleRoom,
    CurrentUser,
    DatabaseDep,
    InventoryDep,
    PowerPolicyDep,
    SessionDep,
    StaffUser,
    TimezoneDep,
)
from api.schemas import LedgerEntryOut
from api.stay_schemas import (
    BedShareOut,
    MonthPartOut,
    MoveOutIn,
    RefundIn,
    SharesOut,
    StayIn,
    StayOut,
    StayStatementOut,
)
from houqin.billing.refunds import NothingToRefundError, RefundKeyReusedError, refund_balance
from houqin.billing.shares import even_shares
from houqin.billing.stays import (
    Stay,
    StayError,
    month_shares,
    move_in,
    move_out,
    room_stays,
    stay_statement,
)
from houqin.inventory.model import Room
from houqin.store.tables import Role, RoomStay, User, UserRoom

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])

StayId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the stay's id")]
SEE_ANY_ROOM = {Role.STAFF, Role.CASHIER, Role.ADMIN}


def _stay_out(stay: Stay) -> StayOut:
    return StayOut(id=stay.id, student=stay.student, bed=stay.bed, moved_in=stay.moved_in, moved_out=stay.moved_out)


def _stay_error(exc: StayError) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT if exc.conflict else status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


def _staff_room(inventory: InventoryDep, room_id: str) -> Room:
    room = inventory.rooms.get(room_id)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no room {room_id!r}")
    return room


@router.get(
    "/{room_id}/shares",
    response_model=SharesOut,
    summary="The month's kWh and cost split between the room's students: by bed-days where stays are recorded, "
    "else evenly per bed (the room's students, staff)",
)
async def read_shares(
    room: AccessibleRoom,
    session: SessionDep,
    inventory: InventoryDep,
    timezone: TimezoneDep,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM; default now")] = None,
) -> SharesOut:
    month = month or datetime.now(timezone).strftime("%Y-%m")
    statement, by_days = await month_shares(session, room, inventory.tariffs[room.tariff], month, timezone)
    kwh = round(statement.kwh_charged + statement.kwh_free, 3)
    if len(by_days) > 1:  # stays recorded: each day split between who lived there
        shares = [
            BedShareOut(bed=share.stay.bed, student=share.stay.student, bed_days=share.bed_days, kwh=share.kwh,
                        cost_fen=share.cost_fen) if share.stay else
            BedShareOut(bed=None, student=None, kwh=share.kwh, cost_fen=share.cost_fen)
            for share in by_days
        ]  # fmt: skip
        return SharesOut(room=room.id, month=month, split="bed_days", kwh=round(sum(s.kwh for s in shares), 3),
                         cost_fen=statement.charged_fen, shares=shares)  # fmt: skip
    names = await session.execute(
        select(User.username, User.display_name).join(UserRoom, UserRoom.user_id == User.id)
        .where(UserRoom.room_id == room.id, User.role == Role.STUDENT)
    )  # fmt: skip
    students = [name or username for username, name in names.all()]
    even = even_shares(room.beds, kwh, statement.charged_fen, students)
    return SharesOut(room=room.id, month=month, split="even", kwh=kwh, cost_fen=statement.charged_fen,
                     shares=[BedShareOut.model_validate(share, from_attributes=True) for share in even])  # fmt: skip


@router.get(
    "/{room_id}/stays",
    response_model=list[StayOut],
    summary="Who lived on which bed, when (the room's students, staff)",
)
async def list_stays(room: AccessibleRoom, session: SessionDep) -> list[StayOut]:
    return [_stay_out(stay) for stay in await room_stays(session, room.id)]


@router.post(
    "/{room_id}/stays",
    response_model=StayOut,
    status_code=status.HTTP_201_CREATED,
    summary="A student moves in to a bed (staff); 409 when the bed is taken or they live elsewhere",
)
async def create_stay(
    room_id: str, body: StayIn, user: StaffUser, session: SessionDep, inventory: InventoryDep, timezone: TimezoneDep
) -> StayOut:
    room = _staff_room(inventory, room_id)
    student = (await session.execute(select(User).where(User.username == body.username))).scalar()
    if student is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no account {body.username!r}")
    if student.role != Role.STUDENT:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{body.username} is not a student account")
    try:
        stay = await move_in(session, room, student, body.bed, body.moved_in, datetime.now(timezone).date(),
                             user.username, body.note)  # fmt: skip
    except StayError as exc:
        raise _stay_error(exc) from None
    await session.commit()
    return StayOut(id=stay.id, student=student.username, bed=stay.bed, moved_in=stay.moved_in, moved_out=None)


async def _statement(session: SessionDep, inventory: InventoryDep, room: Room, row: RoomStay, tz: TimezoneDep,
                     student: str) -> StayStatementOut:  # fmt: skip
    stay = Stay(row.id, student, row.bed, row.moved_in, row.moved_out)
    found = await stay_statement(session, room, inventory.tariffs[room.tariff], stay, datetime.now(tz).date(), tz)
    return StayStatementOut(room=room.id, stay=_stay_out(stay), used_fen=found.used_fen, paid_fen=found.paid_fen,
                            months=[MonthPartOut(month=m.month, bed_days=m.bed_days, kwh=m.kwh, cost_fen=m.cost_fen)
                                    for m in found.months])  # fmt: skip


async def _stay_row(session: SessionDep, room_id: str, stay_id: int) -> tuple[RoomStay, str]:
    found = (await session.execute(
        select(RoomStay, User.username).join(User, User.id == RoomStay.user_id)
        .where(RoomStay.id == stay_id, RoomStay.room == room_id)
    )).first()  # fmt: skip
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stay {stay_id} in room {room_id!r}")
    return found[0], found[1]


@router.post(
    "/{room_id}/stays/{stay_id}/move-out",
    response_model=StayStatementOut,
    summary="A student moves out (staff): the stay ends, and their statement (used and paid) is the answer",
)
async def end_stay(
    room_id: str, stay_id: StayId, body: MoveOutIn, user: StaffUser, session: SessionDep, inventory: InventoryDep,
    timezone: TimezoneDep,
) -> StayStatementOut:  # fmt: skip
    room = _staff_room(inventory, room_id)
    row, student = await _stay_row(session, room_id, stay_id)
    try:
        await move_out(session, row, body.moved_out, datetime.now(timezone).date(), user.username, body.note)
    except StayError as exc:
        raise _stay_error(exc) from None
    await session.commit()
    return await _statement(session, inventory, room, row, timezone, student)


@router.get(
    "/{room_id}/stays/{stay_id}/statement",
    response_model=StayStatementOut,
    summary="A stay's statement: staff, cashiers, and the student it belongs to (also after they moved out)",
)
async def read_stay_statement(
    room_id: str, stay_id: StayId, user: CurrentUser, session: SessionDep, inventory: InventoryDep,
    timezone: TimezoneDep,
) -> StayStatementOut:  # fmt: skip
    room = inventory.rooms.get(room_id)
    row = await session.get(RoomStay, stay_id) if room is not None else None
    mine = row is not None and row.user_id == user.id and user.role == Role.STUDENT
    if user.role not in SEE_ANY_ROOM and not mine:
        # The same answer whether the stay exists or not: a student learns nothing of others' stays.
        raise HTTPException(status.HTTP_403_FORBIDDEN, "you may only see your own statement")
    if room is None or row is None or row.room != room_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no stay {stay_id} in room {room_id!r}")
    _, student = await _stay_row(session, room_id, stay_id)
    return await _statement(session, inventory, room, row, timezone, student)


@router.post(
    "/{room_id}/refund-balance",
    response_model=LedgerEntryOut,
    status_code=status.HTTP_201_CREATED,
    summary="Pay back the whole balance (staff, e.g. at the end of the year): a refund entry naming who did it, "
    "to whom and why; the Idempotency-Key header makes a retry return the first refund",
)
async def refund(
    room_id: str, body: RefundIn, user: StaffUser, inventory: InventoryDep, database: DatabaseDep,
    policy: PowerPolicyDep, idempotency_key: Annotated[str, Header(min_length=8, max_length=100)],
) -> LedgerEntryOut:  # fmt: skip
    _staff_room(inventory, room_id)
    try:
        entry = await refund_balance(database, policy, room_id, datetime.now(UTC), key=idempotency_key,
                                     by=user.username, to=body.to, reason=body.reason)  # fmt: skip
    except (NothingToRefundError, RefundKeyReusedError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return LedgerEntryOut.model_validate(entry, from_attributes=True)
