"""Dorm rooms. Staff and admins see every room; a student sees only their own."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from api.deps import AccessibleRoom, CurrentUser, InventoryDep, TelemetryDep
from api.schemas import RoomOut, UsageOut, UsageWindowOut
from houqin.accounts import Role
from houqin.inventory.model import Room
from houqin.telemetry import SeriesUnavailable
from houqin.telemetry.usage import Period, energy_usage, usage_boundaries

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


def _room_out(room: Room) -> RoomOut:
    return RoomOut.model_validate(room, from_attributes=True)


@router.get("", response_model=list[RoomOut], summary="Rooms I may see (student: own; staff, admin: all)")
async def list_rooms(user: CurrentUser, inventory: InventoryDep, building: str | None = None) -> list[RoomOut]:
    if user.role in {Role.STAFF, Role.ADMIN}:
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
