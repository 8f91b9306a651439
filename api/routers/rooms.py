"""Dorm rooms. Staff and admins see every room; a student sees only their own."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from api.deps import AccessibleRoom, CurrentUser, InventoryDep
from api.schemas import RoomOut
from houqin.accounts import Role
from houqin.inventory.model import Room

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
