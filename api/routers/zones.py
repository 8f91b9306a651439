"""Zones with their current state, manual overrides, emergency broadcasts, and the command audit.

Who may do what: staff and admins only, for reading and for changing. An override and an emergency
broadcast take effect at once (their commands are queued in the request), not at the scheduler's next pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime
from sqlalchemy import select

from api.deps import SessionDep, StaffUser
from api.routers.schedules import book_of
from api.schedule_schemas import (
    CommandAuditOut,
    EmergencyIn,
    EmergencyOut,
    OutputStateOut,
    OverrideIn,
    OverrideOut,
    SegmentOut,
    SoundOut,
    ZoneOut,
)
from houqin.commands import CommandQueue
from houqin.inventory.model import Zone
from houqin.schedules.commander import ZoneCommander, emergency_end, emergency_start, override_firing
from houqin.schedules.zones import ZoneActionError, check_zone_action
from houqin.store.tables import DeviceCommand

router = APIRouter(tags=["zones"])

MAX_OVERRIDE = timedelta(days=14)


def _commander(request: Request) -> ZoneCommander:
    commander: ZoneCommander = request.app.state.zone_commander
    return commander


def _zone(request: Request, zone_id: str) -> Zone:
    try:
        return book_of(request).zone(zone_id)
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\"")) from None


async def _zones_out(request: Request, session: SessionDep, zones: list[Zone]) -> list[ZoneOut]:
    book, commander = book_of(request), _commander(request)
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
        if zone.kind == "lighting":
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
            )
        )
    return result


@router.get("/api/v1/zones", response_model=list[ZoneOut], summary="Every zone and its state now (staff)")
async def list_zones(user: StaffUser, request: Request, session: SessionDep) -> list[ZoneOut]:
    inventory = request.app.state.inventory
    return await _zones_out(request, session, list(inventory.zones.values()))


@router.get("/api/v1/zones/{zone_id}", response_model=ZoneOut, summary="One zone and its state now (staff)")
async def read_zone(zone_id: str, user: StaffUser, request: Request, session: SessionDep) -> ZoneOut:
    [zone] = await _zones_out(request, session, [_zone(request, zone_id)])
    return zone


@router.post(
    "/api/v1/zones/{zone_id}/override",
    response_model=OverrideOut,
    status_code=status.HTTP_201_CREATED,
    summary="Hold a zone in a state until a time (staff); replaces the zone's active override",
)
async def start_override(zone_id: str, body: OverrideIn, user: StaffUser, request: Request) -> OverrideOut:
    zone = _zone(request, zone_id)
    now = datetime.now(UTC)
    allowed = {"on", "off", "dim"} if zone.kind == "lighting" else {"stop"}
    if body.action not in allowed:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"a {zone.kind} zone is overridden with {', '.join(sorted(allowed))}"
        )
    if body.action == "dim":
        try:
            check_zone_action(request.app.state.inventory, zone, "dim")
        except ZoneActionError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if body.until <= now:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "until is in the past")
    if body.until - now > MAX_OVERRIDE:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"an override lasts at most {MAX_OVERRIDE.days} days"
        )
    book = book_of(request)
    row = await book.start_override(zone, body.action, body.level, body.until, user.username, body.reason, now)
    firing = override_firing(zone.id, row.id, row.action, row.level, row.starts_at, row.until)
    await _commander(request).record([firing], now, requested_by=user.username)
    return OverrideOut.model_validate(row)


@router.delete(
    "/api/v1/zones/{zone_id}/override",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End a zone's override now: its schedule takes over again (staff)",
)
async def end_override(zone_id: str, user: StaffUser, request: Request) -> Response:
    zone = _zone(request, zone_id)
    if not await book_of(request).end_override(zone.id, user.username, datetime.now(UTC)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"zone {zone.id!r} has no active override")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/broadcast/emergency",
    response_model=EmergencyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Play an emergency programme now in broadcast zones, above every schedule (staff, admin)",
)
async def start_emergency(body: EmergencyIn, user: StaffUser, request: Request) -> EmergencyOut:
    inventory = request.app.state.inventory
    broadcast = sorted(zone.id for zone in inventory.zones.values() if zone.kind == "broadcast")
    zones = body.zones or broadcast
    wrong = [zone for zone in zones if zone not in broadcast]
    if wrong:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"not broadcast zones: {', '.join(wrong)}; broadcast zones: {', '.join(broadcast)}",
        )
    now = datetime.now(UTC)
    row = await book_of(request).start_emergency(
        zones, body.programme, now + timedelta(seconds=body.duration_s), user.username, body.reason, now
    )
    firings = [emergency_start(zone, row.id, row.programme, row.starts_at, row.until) for zone in row.zones]
    await _commander(request).record(firings, now, requested_by=user.username)
    return EmergencyOut.model_validate(row)


@router.get(
    "/api/v1/broadcast/emergency",
    response_model=list[EmergencyOut],
    summary="Emergency broadcasts of the last days, newest first (staff)",
)
async def list_emergencies(
    user: StaffUser, request: Request, days: Annotated[int, Query(ge=1, le=365)] = 7
) -> list[EmergencyOut]:
    rows = await book_of(request).emergencies(datetime.now(UTC) - timedelta(days=days))
    return [EmergencyOut.model_validate(row) for row in reversed(rows)]


@router.delete(
    "/api/v1/broadcast/emergency/{emergency_id}",
    response_model=EmergencyOut,
    summary="End an emergency broadcast now (staff)",
)
async def end_emergency(emergency_id: int, user: StaffUser, request: Request) -> EmergencyOut:
    now = datetime.now(UTC)
    row = await book_of(request).end_emergency(emergency_id, user.username, now)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no emergency broadcast {emergency_id}")
    if row.ended_at == now:
        grace = timedelta(seconds=request.app.state.settings.schedules.command_deadline_s)
        await _commander(request).record(
            [emergency_end(zone, row.id, now, now + grace) for zone in row.zones], now, requested_by=user.username
        )
    return EmergencyOut.model_validate(row)


@router.get(
    "/api/v1/commands",
    response_model=list[CommandAuditOut],
    summary="Device commands, newest first, with their status (staff)",
)
async def command_audit(
    user: StaffUser,
    request: Request,
    device: str | None = None,
    zone: str | None = None,
    state: Annotated[str | None, Query(pattern="^(queued|sent|confirmed|failed|superseded)$")] = None,
    source: str | None = None,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandAuditOut]:
    queue: CommandQueue = request.app.state.commands
    rows = await queue.recent(device, limit, state=state, source=source, zone=zone, since=start, until=end)
    return [CommandAuditOut.model_validate(row) for row in rows]
