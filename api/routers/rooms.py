"""Dorm rooms. Staff and admins see every room; a student sees only their own."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.bounds import MAX_ROW_ID, MONTH_PATTERN, Day
from api.deps import (
    AccessibleRoom,
    AdminUser,
    CurrentUser,
    DatabaseDep,
    InventoryDep,
    PowerPolicyDep,
    SessionDep,
    SettingsDep,
    StaffUser,
    TelemetryDep,
    TimezoneDep,
)
from api.schemas import (
    AdjustmentIn,
    CircuitStateOut,
    CircuitUsageOut,
    LedgerEntryOut,
    LockedRoomOut,
    NoticeOut,
    PowerEventOut,
    RoomDetailOut,
    RoomOut,
    RoomState,
    StatementDayOut,
    StatementOut,
    UnlockIn,
    UsageOut,
    UsageWindowOut,
    WalletOut,
)
from houqin.billing.credits import credit
from houqin.billing.policy import PowerPolicy
from houqin.billing.statement import CircuitTotals, MonthStatement, month_statement
from houqin.billing.switching import active_causes
from houqin.inventory import Inventory
from houqin.inventory.model import Room
from houqin.settings import Settings
from houqin.store.tables import (
    EntryKind,
    LedgerEntry,
    PaymentOrder,
    PowerEventKind,
    Role,
    RoomNotice,
    RoomPowerEvent,
    User,
    Wallet,
    WalletState,
)
from houqin.telemetry import SeriesUnavailable
from houqin.telemetry.usage import Period, energy_usage, usage_boundaries

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


def _room_out(room: Room) -> RoomOut:
    return RoomOut.model_validate(room, from_attributes=True)


@router.get("", response_model=list[RoomOut], summary="Rooms I may see (student: own; staff, cashier, admin: all)")
async def list_rooms(
    user: CurrentUser,
    inventory: InventoryDep,
    session: SessionDep,
    timezone: TimezoneDep,
    building: str | None = None,
    wallets: Annotated[bool, Query(description="add each room's balance and state")] = False,
) -> list[RoomOut]:
    if user.role in {Role.STAFF, Role.CASHIER, Role.ADMIN}:
        rooms = list(inventory.rooms.values())
    elif user.role == Role.STUDENT:
        rooms = [inventory.rooms[room_id] for room_id in user.room_ids if room_id in inventory.rooms]
    else:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "rooms are for students and staff")
    out = [_room_out(room) for room in rooms if building is None or room.building == building]
    if wallets:
        # One query for every room: a staff page lists a whole campus.
        held = {w.room: w for w in (await session.execute(select(Wallet))).scalars()}
        now = datetime.now(timezone)
        for room in out:
            wallet = held.get(room.id)
            room.balance_fen = wallet.balance_fen if wallet else 0
            room.state = _state(wallet, now)
    return out


def _state(wallet: Wallet | None, now: datetime) -> RoomState:
    """A cut-off room stays cut off while tripped too: a top-up, not the trip's end, brings its power back.
    A locked room is off whatever its balance: staff, not a top-up, bring its power back."""
    if wallet is None:
        return "normal"
    if wallet.locked:
        return "locked"
    if wallet.tripped_until is not None and wallet.tripped_until > now and wallet.state != WalletState.CUT_OFF:
        return "tripped"
    if wallet.curfew and wallet.state != WalletState.CUT_OFF:
        return "curfew"
    state: Literal["normal", "low", "cut_off"] = wallet.state  # type: ignore[assignment]
    return state


@router.get("/locked", response_model=list[LockedRoomOut], summary="Rooms locked after appliance trips (staff)")
async def list_locked(_: StaffUser, session: SessionDep, inventory: InventoryDep) -> list[LockedRoomOut]:
    locked = (await session.execute(select(Wallet.room).where(Wallet.locked.is_(True)))).scalars().all()
    # Every lock event of the locked rooms in one query, oldest first: the last of each room is its lock.
    events = (await session.execute(
        select(RoomPowerEvent).where(RoomPowerEvent.room.in_(locked), RoomPowerEvent.kind == PowerEventKind.LOCKED)
        .order_by(RoomPowerEvent.id))).scalars()  # fmt: skip
    latest = {event.room: event for event in events}
    out: list[LockedRoomOut] = []
    for room_id in sorted(locked):
        event = latest.get(room_id)
        building = inventory.rooms[room_id].building if room_id in inventory.rooms else ""
        out.append(LockedRoomOut(room=room_id, building=building, locked_at=event.at if event else None,
                                 reason=event.reason if event else ""))  # fmt: skip
    return out


@router.get("/{room_id}", response_model=RoomDetailOut, summary="One room and its wallet (student: own; staff: any)")
async def read_room(
    room: AccessibleRoom, session: SessionDep, inventory: InventoryDep, settings: SettingsDep
) -> RoomDetailOut:
    wallet = await _wallet(room, session, inventory, settings)
    return RoomDetailOut(**_room_out(room).model_dump(), wallet=wallet)


@router.get(
    "/{room_id}/usage",
    response_model=UsageOut,
    summary="Energy used per hour of a day or per day of a month (student: own room; staff, admin: any)",
)
async def read_usage(
    room: AccessibleRoom,
    inventory: InventoryDep,
    telemetry: TelemetryDep,
    timezone: TimezoneDep,
    period: Annotated[Period, Query(description="day: per hour; month: per day")] = "day",
    on: Annotated[Day | None, Query(alias="date", description="a day in the period, local; default today")] = None,
) -> UsageOut:
    day = on or datetime.now(timezone).date()
    boundaries = usage_boundaries(period, day, timezone)
    # A room metered by circuit uses what its circuits' registers count, window by window.
    registers = inventory.registers(room)
    try:
        per_register = [await energy_usage(telemetry, register.meter, boundaries, now=datetime.now(UTC),
                                           field=register.register) for register in registers]  # fmt: skip
    except SeriesUnavailable as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    windows = []
    for index, window in enumerate(per_register[0]):
        parts = [usage[index] for usage in per_register]
        known = [part.kwh for part in parts if part.kwh is not None]
        kwh = round(sum(known), 6) if known else None
        partial = any(part.partial for part in parts) or (bool(known) and len(known) < len(parts))
        windows.append(UsageWindowOut(start=window.start, end=window.end, kwh=kwh, partial=partial))
    circuits = [
        CircuitUsageOut(id=register.circuit, total_kwh=round(sum(w.kwh or 0.0 for w in usage), 6))
        for register, usage in zip(registers, per_register, strict=True)
        if register.circuit is not None
    ]
    return UsageOut(
        room=room.id,
        meter=room.meter,
        period=period,
        date=day,
        total_kwh=round(sum(window.kwh or 0.0 for window in windows), 6),
        windows=windows,
        circuits=circuits,
    )


@router.get("/{room_id}/wallet", response_model=WalletOut, summary="Balance, state and this month (student: own)")
async def read_wallet(
    room: AccessibleRoom, session: SessionDep, inventory: InventoryDep, settings: SettingsDep
) -> WalletOut:
    return await _wallet(room, session, inventory, settings)


async def _wallet(room: Room, session: AsyncSession, inventory: Inventory, settings: Settings) -> WalletOut:
    now = datetime.now(settings.tz)
    month = now.strftime("%Y-%m")
    statement = await month_statement(session, room, inventory.tariffs[room.tariff], month, settings.tz)
    wallet = await session.get(Wallet, room.id)
    tripped_until = wallet.tripped_until if wallet is not None else None
    tripped = tripped_until is not None and tripped_until > now
    return WalletOut(
        room=room.id, balance_fen=wallet.balance_fen if wallet else 0, state=_state(wallet, now),
        locked=bool(wallet and wallet.locked),
        cut_pending=bool(wallet and wallet.cut_deferred), tripped_until=tripped_until if tripped else None,
        trips=wallet.trips if wallet else 0, power_limit_w=room.power_limit_w or settings.billing.power_limit_w,
        curfew=bool(wallet and wallet.curfew), night_limit_w=wallet.night_limit_w if wallet else None,
        tariff=room.tariff, month=month, month_kwh=round(statement.kwh_charged + statement.kwh_free, 3),
        month_spend_fen=statement.charged_fen, free_kwh_left=statement.free_kwh_left,
        circuits=_circuits(room, inventory, statement, wallet, now),
    )  # fmt: skip


def _circuits(
    room: Room, inventory: Inventory, statement: MonthStatement, wallet: Wallet | None, now: datetime
) -> list[CircuitStateOut]:
    active = (
        active_causes(wallet.state, wallet.locked, wallet.curfew, wallet.tripped_until, now) if wallet else frozenset()
    )
    out = []
    for circuit in room.circuits:
        totals = statement.circuits.get(circuit.id, CircuitTotals())
        tariff = inventory.tariffs[circuit.tariff or room.tariff]
        billed = bool(tariff.price_fen_per_kwh) or any(period.price_fen_per_kwh for period in tariff.periods)
        out.append(CircuitStateOut(id=circuit.id, name=circuit.name or circuit.id, tariff=circuit.tariff or room.tariff,
                                   powered=not (set(circuit.cut_on) & active), billed=billed,
                                   month_kwh=round(totals.kwh_charged + totals.kwh_free, 3),
                                   month_spend_fen=totals.charged_fen))  # fmt: skip
    return out


@router.get("/{room_id}/notices", response_model=list[NoticeOut], summary="What the room was told, newest first")
async def read_notices(
    room: AccessibleRoom,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="notices older than this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[NoticeOut]:
    query = select(RoomNotice).where(RoomNotice.room == room.id).order_by(RoomNotice.id.desc()).limit(limit)
    if before is not None:
        query = query.where(RoomNotice.id < before)
    return [NoticeOut.model_validate(n, from_attributes=True) for n in (await session.execute(query)).scalars()]


@router.get(
    "/{room_id}/power-events",
    response_model=list[PowerEventOut],
    summary="What the power policy did to the room (appliance trips, locks, unlocks), newest first (student: own)",
)
async def read_power_events(
    room: AccessibleRoom,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="events older than this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[PowerEventOut]:
    query = select(RoomPowerEvent).where(RoomPowerEvent.room == room.id).order_by(RoomPowerEvent.id.desc())
    if before is not None:
        query = query.where(RoomPowerEvent.id < before)
    events = (await session.execute(query.limit(limit))).scalars()
    return [PowerEventOut.model_validate(event, from_attributes=True) for event in events]


@router.post(
    "/{room_id}/lock",
    response_model=WalletOut,
    summary="Lock a room's power off with a reason (staff), whatever its balance, until it is unlocked",
)
async def lock(
    room_id: str, body: UnlockIn, user: StaffUser, policy: PowerPolicyDep, session: SessionDep,
    inventory: InventoryDep, settings: SettingsDep,
) -> WalletOut:  # fmt: skip
    return await _switch_lock(True, room_id, body, user.username, policy, session, inventory, settings)


@router.post(
    "/{room_id}/unlock",
    response_model=WalletOut,
    summary="Unlock a room locked after appliance trips, with a reason (staff); its power returns if money allows",
)
async def unlock(
    room_id: str, body: UnlockIn, user: StaffUser, policy: PowerPolicyDep, session: SessionDep,
    inventory: InventoryDep, settings: SettingsDep,
) -> WalletOut:  # fmt: skip
    return await _switch_lock(False, room_id, body, user.username, policy, session, inventory, settings)


async def _switch_lock(
    locking: bool, room_id: str, body: UnlockIn, username: str, policy: PowerPolicy, session: AsyncSession,
    inventory: Inventory, settings: Settings,
) -> WalletOut:  # fmt: skip
    room = inventory.rooms.get(room_id)
    if room is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no room {room_id!r}")
    change = policy.lock if locking else policy.unlock
    if not await change(room.id, datetime.now(UTC), username, body.reason):
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"room {room.id} is {'locked already' if locking else 'not locked'}"
        )
    return await _wallet(room, session, inventory, settings)


@router.get(
    "/{room_id}/statement",
    response_model=StatementOut,
    summary="A month's statement, per day, as JSON or CSV (student: own room; staff: any)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def read_statement(
    room: AccessibleRoom,
    session: SessionDep,
    inventory: InventoryDep,
    timezone: TimezoneDep,
    month: Annotated[str | None, Query(pattern=MONTH_PATTERN, description="YYYY-MM; default now")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> StatementOut | Response:
    month = month or datetime.now(timezone).strftime("%Y-%m")
    statement = await month_statement(session, room, inventory.tariffs[room.tariff], month, timezone)
    out = StatementOut(
        room=statement.room, month=statement.month, tariff=statement.tariff, opening_fen=statement.opening_fen,
        closing_fen=statement.closing_fen, kwh_charged=statement.kwh_charged, kwh_free=statement.kwh_free,
        charged_fen=statement.charged_fen, free_kwh_allowance=statement.free_kwh_allowance,
        free_kwh_left=statement.free_kwh_left,
        days=[StatementDayOut.model_validate(day, from_attributes=True) for day in statement.days],
    )  # fmt: skip
    if format == "json":
        return out
    text = io.StringIO()
    columns = list(StatementDayOut.model_fields)
    writer = csv.writer(text)
    writer.writerow(columns)
    for day in out.days:
        writer.writerow([getattr(day, column) for column in columns])
    writer.writerow(["total", out.kwh_charged, out.kwh_free, out.charged_fen,
                     *(sum(getattr(d, c) for d in out.days) for c in ("topups_fen", "refunds_fen", "adjustments_fen")),
                     out.closing_fen])  # fmt: skip
    filename = f"houqin-{room.id}-{month}.csv"
    return Response(text.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip


@router.get("/{room_id}/ledger", response_model=list[LedgerEntryOut], summary="The room's ledger, newest first")
async def read_ledger(
    room: AccessibleRoom,
    session: SessionDep,
    before: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="entries older than this id (paging)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[LedgerEntryOut]:
    query = select(LedgerEntry).where(LedgerEntry.room == room.id).order_by(LedgerEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(LedgerEntry.id < before)
    entries = list((await session.execute(query)).scalars())
    payers = await _payers(session, entries)
    return [
        LedgerEntryOut.model_validate(entry, from_attributes=True).model_copy(update={"paid_by": payers.get(entry.key)})
        for entry in entries
    ]


async def _payers(session: AsyncSession, entries: list[LedgerEntry]) -> dict[str, str]:
    """Who paid each online top-up among ``entries`` (by entry key): roommates share a wallet and see it."""
    orders = {int(entry.key.split(":", 1)[1]): entry.key for entry in entries
              if entry.key.startswith("payment:") and entry.key.split(":", 1)[1].isdigit()}  # fmt: skip
    if not orders:
        return {}
    rows = await session.execute(
        select(PaymentOrder.id, PaymentOrder.requested_by, User.display_name)
        .outerjoin(User, User.username == PaymentOrder.requested_by)
        .where(PaymentOrder.id.in_(list(orders)))
    )
    return {orders[order_id]: name or username for order_id, username, name in rows.all()}


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
    inventory: InventoryDep,
    database: DatabaseDep,
    policy: PowerPolicyDep,
    idempotency_key: Annotated[str, Header(min_length=8, max_length=100)],
) -> LedgerEntryOut:
    if room_id not in inventory.rooms:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no room {room_id!r}")
    key = f"staff:{idempotency_key}"
    async with database.session() as session:  # given back before the credit takes its own
        existing = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == key))).scalar()
    if existing is not None:
        if existing.room != room_id or existing.amount_fen != body.amount_fen or existing.kind != body.kind:
            raise HTTPException(status.HTTP_409_CONFLICT, "this Idempotency-Key was used for a different request")
        return LedgerEntryOut.model_validate(existing, from_attributes=True)
    now = datetime.now(UTC)
    entry = await credit(database, policy, room_id, EntryKind(body.kind),
                         body.amount_fen, now, key=key, cause=f"staff:{user.username}", note=body.reason)  # fmt: skip
    if entry is None:  # the same key, posted concurrently a moment ago
        async with database.session() as session:
            entry = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == key))).scalar_one()
    return LedgerEntryOut.model_validate(entry, from_attributes=True)
