"""Devices: the inventory with what houqin last heard from each, and a field's history.

Staff, admins and maintenance workers see devices (a repair order points at one); the history of a
field is for staff and admins. Students reach their room's usage through ``/rooms/{room}/usage``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, status

from api.bounds import Moment
from api.deps import CommandsDep, CrewUser, InventoryDep, StaffUser, TelemetryDep
from api.device_state import by_device, device_out
from api.schemas import CommandIn, CommandOut, DeviceDetailOut, DeviceOut, SeriesOut, SeriesPointOut
from houqin.commands import CommandError, CommandRequest
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from houqin.store.tables import CommandSource
from houqin.telemetry import AGGREGATES, SeriesQuery, SeriesUnavailable
from houqin.telemetry.model import SELECTORS, Aggregate

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

MAX_POINTS = 10_000
HEALTH_FIELDS: dict[str, tuple[Literal["number", "bool", "string"], str]] = {
    "online": ("bool", ""),
    "consecutive_failures": ("number", ""),
    "poll_latency_ms": ("number", "ms"),
}


def _known_device(inventory: Inventory, device_id: str) -> Device:
    device = inventory.devices.get(device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    return device


@router.get("", response_model=list[DeviceOut], summary="Devices with online state and last seen (staff, worker)")
async def list_devices(
    user: CrewUser,
    inventory: InventoryDep,
    telemetry: TelemetryDep,
    kind: str | None = None,
    building: str | None = None,
) -> list[DeviceOut]:
    latest = by_device(await telemetry.latest())
    now = datetime.now(UTC)
    devices = [
        device
        for device in inventory.devices.values()
        if (kind is None or inventory.model_of(device).kind == kind)
        and (building is None or device.building == building)
    ]
    return [device_out(inventory, device, latest.get(device.id, {}), now)[0] for device in devices]


@router.get("/{device_id}", response_model=DeviceDetailOut, summary="A device's latest reading and health")
async def read_device(
    device_id: str, user: CrewUser, inventory: InventoryDep, telemetry: TelemetryDep
) -> DeviceDetailOut:
    device = _known_device(inventory, device_id)
    latest = by_device(await telemetry.latest([device.id])).get(device.id, {})
    out, data, health = device_out(inventory, device, latest, datetime.now(UTC))
    return DeviceDetailOut(
        **out.model_dump(),
        fields=dict(data.fields) if data else {},
        health=dict(health.fields) if health else {},
        commands={name: list(command.actions) for name, command in inventory.model_of(device).commands.items()},
    )


@router.get("/{device_id}/series", response_model=SeriesOut, summary="A field's history, aggregated (staff)")
async def read_series(
    device_id: str,
    user: StaffUser,
    inventory: InventoryDep,
    telemetry: TelemetryDep,
    field: Annotated[str, Query(description="a field of the device's model, e.g. power")],
    start: Annotated[Moment, Query(description="ISO 8601 with a time zone, inclusive")],
    end: Annotated[Moment | None, Query(description="exclusive; default now")] = None,
    every: Annotated[int, Query(ge=1, le=366 * 86400, description="window in seconds")] = 300,
    agg: Annotated[Aggregate, Query(description=f"one of {', '.join(AGGREGATES)}")] = "mean",
) -> SeriesOut:
    device = _known_device(inventory, device_id)
    model = inventory.model_of(device)
    fields = model.measured_fields()
    measurement: str = model.kind
    if field in HEALTH_FIELDS:
        fields, measurement = HEALTH_FIELDS, "device_health"
    if field not in fields:
        known = ", ".join(sorted([*fields, *HEALTH_FIELDS]))
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{device_id} has no field {field!r}; it has {known}"
        )
    field_type, unit = fields[field]
    if field_type != "number" and agg not in SELECTORS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{field} is a {field_type}: aggregate it with {', '.join(SELECTORS)}, not {agg}",
        )
    end = end or datetime.now(UTC)
    if start >= end:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "start must be before end")
    windows = (end - start) / timedelta(seconds=every)
    if windows > MAX_POINTS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{windows:.0f} windows of {every} s between start and end; at most {MAX_POINTS}: widen every",
        )
    query = SeriesQuery(measurement, device.id, field, start, end, timedelta(seconds=every), agg)
    try:
        points = await telemetry.series(query)
    except SeriesUnavailable as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return SeriesOut(
        device=device.id, field=field, unit=unit, agg=agg, every_seconds=every,
        points=[SeriesPointOut(start=point.start, value=point.value) for point in points],
    )  # fmt: skip


@router.post(
    "/{device_id}/commands",
    response_model=CommandOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a command (staff): sent through the device's link and confirmed by reading it back",
)
async def send_command(
    device_id: str, body: CommandIn, user: StaffUser, inventory: InventoryDep, queue: CommandsDep
) -> CommandOut:
    _known_device(inventory, device_id)
    try:
        request = CommandRequest(device_id, body.command, body.action, CommandSource.USER, reason=body.reason,
                                 requested_by=user.username)  # fmt: skip
        row = await queue.enqueue(request, datetime.now(UTC))
    except CommandError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    return CommandOut.model_validate(row, from_attributes=True)


@router.get("/{device_id}/commands", response_model=list[CommandOut], summary="A device's recent commands (staff)")
async def list_commands(
    device_id: str, user: StaffUser, inventory: InventoryDep, queue: CommandsDep
) -> list[CommandOut]:
    _known_device(inventory, device_id)
    rows = await queue.recent(device_id)
    return [CommandOut.model_validate(row, from_attributes=True) for row in rows]
