"""Zones with their current state, manual overrides, emergency broadcasts, and the command audit.

Who may do what: staff and admins only, for reading and for changing. An override and an emergency
broadcast take effect at once (their commands are queued in the request), not at the scheduler's next pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, Response, status
from sqlalchemy import select

from api.deps import InventoryDep, ScheduleBookDep, SessionDep, StaffUser, ZoneCommanderDep
from api.schedule_schemas import (
    OutputStateOut,
    OverrideIn,
    OverrideOut,
    SegmentOut,
    SoundOut,
    ZoneOut,
)
from houqin.inventory.model import Zone
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import ZoneCommander, override_firing
from houqin.schedules.zones import ZoneActionError, check_zone_action
from houqin.store.tables import DeviceCommand

router = APIRouter(prefix="/api/v1/zones", tags=["zones"])

MAX_OVERRIDE = timedelta(days=14)


def _zone(book: ScheduleBook, zone_id: str) -> Zone:
    try:
        return book.zone(zone_id)
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\"")) from None


# What staff may hold a zone at by hand: a broadcast zone only silenced (an emergency broadcast plays).
OVERRIDE_ACTIONS = {"lighting": {"on", "off", "dim"}, "broadcast": {"stop"}, "dorm_power": {"on", "off", "limit"}}


async def _zones_out(
    book: ScheduleBook, commander: ZoneCommander, session: SessionDep, zones: list[Zone]
) -> list[ZoneOut]:
    now = datetime.now(UTC)
    drivers = await book.drivers(now)
    overrides = {row.zone: row for row in await book.overrides(now) if row.ended_at is None and row.starts_at <= now}
    devices = {output.device for zone in zones for output in commander.outputs.get(zone.id, [])}
    last: dict[tuple[str, str], DeviceCommand] = {}
    if devices:
        newest = (
            select(DeviceCommand)
            .where(DeviceCommand.device.in_(devices), DeviceCommand.created_at > now - timedelta(days=2))
            .order_by(DeviceCommand.id)
        )
        for row in (await session.execute(newest)).scalars():
            last[(row.device, row.command)] = row
    result = []
    for zone in zones:
        state = playing = None
        if zone.holds_state:
            light, layer, cause = book.timeline(drivers, zone, now, now + timedelta(minutes=1)).state_at(now)
            state = SegmentOut(start=now, end=now, state=light.action, level=light.level, layer=layer, cause=cause)
        else:
            sounds = book.timeline(drivers, zone, now - timedelta(hours=4), now + timedelta(seconds=1)).sounds()
            current = [s for s in sounds if s.start <= now < s.end and s.action == "play" and s.suppressed_by is None]
            if current:
                s = current[-1]
                playing = SoundOut(
                    start=s.start,
                    end=s.end,
                    action=s.action,
                    programme=s.programme,
                    layer=s.layer,
                    cause=s.cause,
                    suppressed_by=None,
                )
        emergency = next((e.id for e in drivers.emergencies.get(zone.id, []) if e.start <= now < e.end), None)
        outputs = []
        for output in commander.outputs.get(zone.id, []):
            sent = last.get((output.device, output.command))
            outputs.append(
                OutputStateOut(
                    device=output.device,
                    command=output.command,
                    last_action=sent.action if sent else None,
                    last_state=sent.state if sent else None,
                    last_at=(sent.finished_at or sent.created_at) if sent else None,
                )
            )
        override = overrides.get(zone.id)
        result.append(
            ZoneOut(
                id=zone.id,
                name=zone.name,
                kind=zone.kind,
                default=zone.default,
                state=state,
                playing=playing,
                override=OverrideOut.model_validate(override) if override else None,
                emergency=emergency,
                outputs=outputs,
                rooms=commander.rooms.get(zone.id, []),
            )
        )
    return result


@router.get("", response_model=list[ZoneOut], summary="Every zone and its state now (staff)")
async def list_zones(
    user: StaffUser, session: SessionDep, inventory: InventoryDep, book: ScheduleBookDep, commander: ZoneCommanderDep
) -> list[ZoneOut]:
    return await _zones_out(book, commander, session, list(inventory.zones.values()))


@router.get("/{zone_id}", response_model=ZoneOut, summary="One zone and its state now (staff)")
async def read_zone(
    zone_id: str, user: StaffUser, session: SessionDep, book: ScheduleBookDep, commander: ZoneCommanderDep
) -> ZoneOut:
    [zone] = await _zones_out(book, commander, session, [_zone(book, zone_id)])
    return zone


@router.post(
    "/{zone_id}/override",
    response_model=OverrideOut,
    status_code=status.HTTP_201_CREATED,
    summary="Hold a zone in a state until a time (staff); replaces the zone's active override",
)
async def start_override(
    zone_id: str,
    body: OverrideIn,
    user: StaffUser,
    inventory: InventoryDep,
    book: ScheduleBookDep,
    commander: ZoneCommanderDep,
) -> OverrideOut:
    zone = _zone(book, zone_id)
    now = datetime.now(UTC)
    allowed = OVERRIDE_ACTIONS[zone.kind]
    if body.action not in allowed:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"a {zone.kind} zone is overridden with {', '.join(sorted(allowed))}"
        )
    if body.action == "dim":
        try:
            check_zone_action(inventory, zone, "dim")
        except ZoneActionError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if body.until <= now:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until is in the past")
    if body.until - now > MAX_OVERRIDE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"an override lasts at most {MAX_OVERRIDE.days} days"
        )
    row = await book.start_override(zone, body.action, body.state_level, body.until, user.username, body.reason, now)
    firing = override_firing(zone.id, row.id, row.action, row.level, row.starts_at, row.until)
    await commander.record([firing], now, requested_by=user.username)
    return OverrideOut.model_validate(row)


@router.delete(
    "/{zone_id}/override",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a zone's override now: its schedule takes over again (staff)",
)
async def end_override(zone_id: str, user: StaffUser, book: ScheduleBookDep) -> Response:
    zone = _zone(book, zone_id)
    if not await book.end_override(zone.id, user.username, datetime.now(UTC)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"zone {zone.id!r} has no active override")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
