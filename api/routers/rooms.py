"""Dorm rooms. Staff and admins see every room; a student sees only their own."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from sqlalchemy import select

from api.deps import AccessibleRoom, AdminUser, CurrentUser, InventoryDep, SessionDep, TelemetryDep
from api.schemas import AdjustmentIn, LedgerEntryOut, RoomOut, UsageOut, UsageWindowOut, WalletOut
from houqin.accounts import Role
from houqin.billing.credits import credit
from houqin.inventory.model import Room
from houqin.store.tables import LedgerEntry, Wallet
from houqin.telemetry import SeriesUnavailable
from houqin.telemetry.usage import Period, energy_usage, usage_boundaries

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


def _room_out(room: Room) -> RoomOut:
    return RoomOut.model_validate(room, from_attributes=True)


@router.get("", response_model=list[RoomOut], summary="Rooms I may see (student: own; staff, cashier, admin: all)")
async def list_rooms(user: CurrentUser, inventory: InventoryDep, building: str | None = None) -> list[RoomOut]:
    if user.role in {Role.STAFF, Role.CASHIER, Role.ADMIN}:
        rooms = list(inventory.rooms.values())
    elif user.role == Role.STUDENT:
        rooms = [inventory.rooms[room_id] for room_id in user.room_ids if room_id in inventory.rooms]
    else:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "rooms are for students and staff")
    return [_room_out(room) for room in rooms if building is None or room.building == building]


@router.get("/{room_id}", response_model=RoomOut, summary="One room (student: own; staff, admin: any)")
async def read_room(room: AccessibleRoom) -> RoomOut:
    return _room_out(room)


@router.get(
    "/{room_id}/usage",
    response_model=UsageOut,
    summary="Energy used per hour of a day or per day of a month (student: own room; staff, admin: any)",
)
async def read_usage(
    room: AccessibleRoom,
    telemetry: TelemetryDep,
    request: Request,
    period: Annotated[Period, Query(description="day: per hour; month: per day")] = "day",
    on: Annotated[date | None, Query(alias="date", description="a day in the period, local; default today")] = None,
) -> UsageOut:
    timezone = request.app.state.settings.tz
    day = on or datetime.now(timezone).date()
    boundaries = usage_boundaries(period, day, timezone)
    try:
        windows = await energy_usage(telemetry, room.meter, boundaries, now=datetime.now(UTC))
    except SeriesUnavailable as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return UsageOut(
        room=room.id,
        meter=room.meter,
        period=period,
        date=day,
        total_kwh=round(sum(window.kwh or 0.0 for window in windows), 6),
        windows=[UsageWindowOut(start=w.start, end=w.end, kwh=w.kwh) for w in windows],
    )


@router.get("/{room_id}/wallet", response_model=WalletOut, summary="Balance, state and this month (student: own)")
async def read_wallet(
    room: AccessibleRoom, session: SessionDep, inventory: InventoryDep, request: Request
) -> WalletOut:
    timezone = request.app.state.settings.tz
    now = datetime.now(timezone)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    wallet = await session.get(Wallet, room.id)
    entries = (
        await session.execute(
            select(LedgerEntry).where(
                LedgerEntry.room == room.id,
                LedgerEntry.created_at >= month_start,
                LedgerEntry.kind.in_(["charge", "allowance"]),
            )
        )
    ).scalars()
    month_kwh, spend, free_used = 0.0, 0, 0.0
    for entry in entries:
        month_kwh += entry.kwh or 0.0
        if entry.kind == "charge":
            spend -= entry.amount_fen
        else:
            free_used += entry.kwh or 0.0
    tariff = inventory.tariffs[room.tariff]
    allowance = tariff.free_kwh(room.beds)
    return WalletOut(
        room=room.id, balance_fen=wallet.balance_fen if wallet else 0, state=wallet.state if wallet else "normal",
        tariff=room.tariff, month=now.strftime("%Y-%m"), month_kwh=round(month_kwh, 3), month_spend_fen=spend,
        free_kwh_left=round(max(0.0, allowance - free_used), 3),
    )  # fmt: skip


@router.get("/{room_id}/ledger", response_model=list[LedgerEntryOut], summary="The room's ledger, newest first")
async def read_ledger(
    room: AccessibleRoom,
    session: SessionDep,
    before: Annotated[int | None, Query(description="entries older than this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[LedgerEntryOut]:
    query = select(LedgerEntry).where(LedgerEntry.room == room.id).order_by(LedgerEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    return [LedgerEntryOut.model_validate(e, from_attributes=True) for e in (await session.execute(query)).scalars()]


@router.post(
    "/{room_id}/adjustments",
    response_model=LedgerEntryOut,
    status_code=status.HTTP_201_CREATED,
    summary="Credit or debit a room with a reason (admin); the Idempotency-Key header makes a retry safe",
)
async def adjust(
    room_id: str,
    body: AdjustmentIn,
    user: AdminUser,
    session: SessionDep,
    inventory: InventoryDep,
    request: Request,
    idempotency_key: Annotated[str, Header(min_length=8, max_length=100)],
) -> LedgerEntryOut:
    if room_id not in inventory.rooms:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no room {room_id!r}")
    key = f"staff:{idempotency_key}"
    existing = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == key))).scalar()
    if existing is not None:
        if existing.room != room_id or existing.amount_fen != body.amount_fen or existing.kind != body.kind:
            raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key was used for a different request")
        return LedgerEntryOut.model_validate(existing, from_attributes=True)
    now = datetime.now(UTC)
    entry = await credit(request.app.state.database, request.app.state.power_policy, room_id, body.kind,
                         body.amount_fen, now, key=key, cause=f"staff:{user.username}", note=body.reason)  # fmt: skip
    if entry is None:  # the same key, posted concurrently a moment ago
        entry = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == key))).scalar_one()
    return LedgerEntryOut.model_validate(entry, from_attributes=True)
