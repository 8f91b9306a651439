"""Weeks of readings the simulated campus would have given before now, so a fresh demo shows history.

Every energy and water meter the simulation serves gets a reading at every hour of the last ``days`` days,
ending where its counter stands when the simulation starts (``starting_counter``): the history runs into
the live readings without a step. Rooms follow the dorm day (``DORM_PROFILE``) with a steady character of
their own and day-to-day variation (weekends busier in the evening, a few days away); a building's main
meter carries its rooms and 1.5 kW of common areas, so its sub-meters leave that unaccounted; water follows
``WATER_PROFILE``. Seeded: the same campus gets the same history.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from collectors.simulators.physics import DORM_PROFILE, WATER_PROFILE, starting_counter
from houqin.inventory import Inventory
from houqin.inventory.model import Device
from houqin.readings import Reading

COMMON_AREAS_W = 1500.0
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class _Meter:
    device: Device
    kind: str  # electricity | water
    room: bool
    field: str  # energy | total


def _meters(inventory: Inventory) -> list[_Meter]:
    room_meters = {room.meter for room in inventory.rooms.values()}
    meters = []
    for device in inventory.devices.values():
        model = inventory.model_of(device)
        fields = model.measured_fields()
        if model.kind == "electricity" and "energy" in fields:
            meters.append(_Meter(device, "electricity", device.id in room_meters, "energy"))
        elif model.kind == "water" and "total" in fields:
            meters.append(_Meter(device, "water", False, "total"))
    return meters


def history_hours(end: datetime, days: int) -> list[datetime]:
    """The whole hours (UTC) of the ``days`` days before ``end``."""
    last = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if last == end:
        last -= HOUR
    return [last - HOUR * back for back in range(days * 24 - 1, -1, -1)]


def _room_watts(rng: random.Random, character: float, local: datetime, away: bool) -> float:
    if away:
        return 25.0  # a router and a charger
    profile = float(DORM_PROFILE[local.hour])
    if local.weekday() >= 5 and local.hour >= 9:
        profile *= 1.25  # at home more at the weekend
    return profile * character * rng.uniform(0.8, 1.2)


def campus_history(inventory: Inventory, timezone: ZoneInfo, days: int, end: datetime) -> Iterator[list[Reading]]:
    """The history, a day of readings at a time (every meter, every hour), oldest first."""
    hours = history_hours(end, days)
    meters = _meters(inventory)
    rng = random.Random(7)  # noqa: S311 - simulation
    character = {m.device.id: rng.uniform(0.6, 1.5) for m in meters}
    away = {(m.device.id, day) for m in meters if m.room for day in range(days) if rng.random() < 0.04}
    usage: dict[str, list[float]] = {}  # meter -> use in each hour (kWh or m³)
    watts: dict[str, list[float]] = {}
    for meter in meters:
        if meter.kind == "electricity" and meter.room:
            who = meter.device.id
            drawn = [_room_watts(rng, character[who], hour.astimezone(timezone), (who, index // 24) in away)
                     for index, hour in enumerate(hours)]  # fmt: skip
            watts[meter.device.id], usage[meter.device.id] = drawn, [w / 1000 for w in drawn]
        elif meter.kind == "water":
            flow = [WATER_PROFILE[hour.astimezone(timezone).hour] * rng.uniform(0.8, 1.2) for hour in hours]
            watts[meter.device.id], usage[meter.device.id] = flow, [f * 60 / 1000 for f in flow]
    for meter in meters:
        if meter.kind == "electricity" and not meter.room:
            rooms = [other.device.id for other in meters
                     if other.room and other.device.building == meter.device.building]  # fmt: skip
            drawn = [COMMON_AREAS_W + sum(watts[room][index] for room in rooms) for index in range(len(hours))]
            watts[meter.device.id], usage[meter.device.id] = drawn, [w / 1000 for w in drawn]
    counters: dict[str, list[float]] = {}
    for meter in meters:
        protocol = inventory.model_of(meter.device).protocol
        value = starting_counter(meter.device.id, meter.kind, meter.room, protocol)
        # The counter at the start of the live simulation, less what was used from each hour to then.
        values = []
        for used in reversed(usage[meter.device.id]):
            value -= used
            values.append(value)
        counters[meter.device.id] = values[::-1]
    tags = {meter.device.id: inventory.device_tags(meter.device) for meter in meters}
    for day in range(days):
        batch = []
        for index in range(day * 24, (day + 1) * 24):
            for meter in meters:
                rate = "power" if meter.kind == "electricity" else "flow"
                fields = {meter.field: round(counters[meter.device.id][index], 4),
                          rate: round(watts[meter.device.id][index], 2)}  # fmt: skip
                batch.append(Reading(meter.device.id, hours[index], fields, tags[meter.device.id]))
        yield batch
