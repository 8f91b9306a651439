"""Emergency broadcasts: a programme played now in broadcast zones, above every schedule, until ended or
its duration is over. Staff and admins only; its commands are queued in the request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.bounds import MAX_ROW_ID
from api.deps import InventoryDep, ScheduleBookDep, SettingsDep, StaffUser, ZoneCommanderDep
from api.schedule_schemas import EmergencyIn, EmergencyOut
from houqin.schedules.commander import emergency_end, emergency_start

router = APIRouter(prefix="/api/v1/broadcast/emergency", tags=["zones"])


@router.post(
    "",
    response_model=EmergencyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Play an emergency programme now in broadcast zones, above every schedule (staff, admin)",
)
async def start_emergency(
    body: EmergencyIn, user: StaffUser, inventory: InventoryDep, book: ScheduleBookDep, commander: ZoneCommanderDep
) -> EmergencyOut:
    broadcast = sorted(zone.id for zone in inventory.zones.values() if zone.kind == "broadcast")
    zones = body.zones or broadcast
    wrong = [zone for zone in zones if zone not in broadcast]
    if wrong:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"not broadcast zones: {', '.join(wrong)}; broadcast zones: {', '.join(broadcast)}",
        )
    now = datetime.now(UTC)
    row = await book.start_emergency(
        zones, body.programme, now + timedelta(seconds=body.duration_s), user.username, body.reason, now
    )
    firings = [emergency_start(zone, row.id, row.programme, row.starts_at, row.until) for zone in row.zones]
    await commander.record(firings, now, requested_by=user.username)
    return EmergencyOut.model_validate(row)


@router.get(
    "",
    response_model=list[EmergencyOut],
    summary="Emergency broadcasts of the last days, newest first (staff)",
)
async def list_emergencies(
    user: StaffUser, book: ScheduleBookDep, days: Annotated[int, Query(ge=1, le=365)] = 7
) -> list[EmergencyOut]:
    rows = await book.emergencies(datetime.now(UTC) - timedelta(days=days))
    return [EmergencyOut.model_validate(row) for row in reversed(rows)]


@router.delete(
    "/{emergency_id}",
    response_model=EmergencyOut,
    summary="End an emergency broadcast now (staff)",
)
async def end_emergency(
    emergency_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    user: StaffUser,
    settings: SettingsDep,
    book: ScheduleBookDep,
    commander: ZoneCommanderDep,
) -> EmergencyOut:
    now = datetime.now(UTC)
    row = await book.end_emergency(emergency_id, user.username, now)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no emergency broadcast {emergency_id}")
    if row.ended_at == now:
        grace = timedelta(seconds=settings.schedules.command_deadline_s)
        await commander.record(
            [emergency_end(zone, row.id, now, now + grace) for zone in row.zones], now, requested_by=user.username
        )
    return EmergencyOut.model_validate(row)
