"""Whether a device is online, from what houqin last heard from it: its health readings where the poller
writes them, else how long it has been silent."""

from __future__ import annotations

from datetime import datetime, timedelta

from api.schemas import DeviceOut
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from houqin.telemetry import LatestPoint


def silence_allowed(device: Device) -> timedelta:
    # A device without health readings (MQTT reports on its own) is online while it keeps reporting.
    return timedelta(seconds=max(3 * device.poll_interval, 60.0))


def device_out(
    inventory: Inventory, device: Device, points: dict[str, LatestPoint], now: datetime
) -> tuple[DeviceOut, LatestPoint | None, LatestPoint | None]:
    model = inventory.model_of(device)
    data = points.get(model.kind)
    health = points.get("device_health")
    seen = [point.ts for point in (data, health) if point is not None and point.fields.get("online", True)]
    last_seen = max(seen) if seen else None
    online: bool | None
    if health is not None:
        online = bool(health.fields.get("online"))
    elif last_seen is not None:
        online = now - last_seen <= silence_allowed(device)
    else:
        online = None
    out = DeviceOut(
        id=device.id, kind=model.kind, model=device.model, building=device.building, floor=device.floor,
        room=device.room, gateway=device.gateway, topic=device.topic, enabled=device.enabled,
        online=online, last_seen=last_seen,
    )  # fmt: skip
    return out, data, health


def by_device(points: list[LatestPoint]) -> dict[str, dict[str, LatestPoint]]:
    grouped: dict[str, dict[str, LatestPoint]] = {}
    for point in points:
        grouped.setdefault(point.device, {})[point.measurement] = point
    return grouped
