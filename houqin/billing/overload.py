"""Overload protection: a pipeline sink that watches room meters' power and trips a room that draws more
than its limit (the room's ``power_limit_w``, else ``billing.power_limit_w``) for ``trip_after_s``. The
trip itself (relay off, the count, the notice, the restore after ``trip_restore_min``) is the power
policy's. Dorms use this against heaters and cookers the wiring was not built for."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.settings import BillingSettings

log = logging.getLogger(__name__)

POWER = "power"


class OverloadGuard:
    name = "overload"

    def __init__(self, inventory: Inventory, policy: PowerPolicy, billing: BillingSettings) -> None:
        self.policy = policy
        self.trip_after = timedelta(seconds=billing.trip_after_s)
        self.restore_after = timedelta(minutes=billing.trip_restore_min)
        self.limits: dict[str, tuple[str, float]] = {}  # meter -> (room, limit W)
        for room in inventory.rooms.values():
            limit = room.power_limit_w or billing.power_limit_w
            if limit is not None:
                self.limits[room.meter] = (room.id, limit)
        self.over_since: dict[str, datetime] = {}  # room -> first reading over the limit, in this run
        self.trips = 0

    async def consume(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            watched = self.limits.get(reading.device)
            power = reading.number(POWER)
            if watched is None or power is None:
                continue
            room, limit = watched
            if power <= limit:
                self.over_since.pop(room, None)
                continue
            since = self.over_since.setdefault(room, reading.ts)
            if reading.ts - since < self.trip_after:
                continue
            del self.over_since[room]
            if await self.policy.trip(room, reading.ts, limit, power, self.restore_after):
                self.trips += 1
                log.warning("room %s tripped: %.0f W over %.0f s, limit %.0f W", room, power,
                            (reading.ts - since).total_seconds(), limit)  # fmt: skip
