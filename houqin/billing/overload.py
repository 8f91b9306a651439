"""Overload protection: a pipeline sink that watches room meters' power and trips a room that draws more
than its limit (the room's ``power_limit_w``, else ``billing.power_limit_w``) for ``trip_after_s``. The
trip itself (relay off, the count, the notice, the restore after ``trip_restore_min``) is the power
policy's. Dorms use this against heaters and cookers the wiring was not built for. A night limit put in force
by a dorm-power schedule (``wallets.night_limit_w``) lowers a room's limit while it holds; the guard reads
them every few seconds, so a schedule fired by another process applies here too."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

from houqin.billing.curfew import night_limits
from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.settings import BillingSettings

log = logging.getLogger(__name__)

POWER = "power"
NIGHT_LIMITS_EVERY_S = 5.0


class OverloadGuard:
    name = "overload"

    def __init__(self, inventory: Inventory, policy: PowerPolicy, billing: BillingSettings) -> None:
        self.policy = policy
        self.trip_after = timedelta(seconds=billing.trip_after_s)
        self.restore_after = timedelta(minutes=billing.trip_restore_min)
        self.limits: dict[str, tuple[str, float]] = {}  # meter -> (room, limit W)
        for room in inventory.rooms.values():
            # A room without a limit of its own is still watched: a night limit may apply to it.
            self.limits[room.meter] = (room.id, room.power_limit_w or billing.power_limit_w or math.inf)
        self.over_since: dict[str, datetime] = {}  # room -> first reading over the limit, in this run
        self.night: dict[str, int] = {}  # room -> night limit in force, W
        self._night_read: float | None = None  # monotonic time of the last read
        self.trips = 0

    async def refresh_night_limits(self) -> None:
        self._night_read = time.monotonic()
        if self.policy.database is not None:
            async with self.policy.database.session() as session:
                self.night = await night_limits(session)

    async def consume(self, readings: Sequence[Reading]) -> None:
        if self._night_read is None or time.monotonic() - self._night_read >= NIGHT_LIMITS_EVERY_S:
            await self.refresh_night_limits()
        for reading in readings:
            watched = self.limits.get(reading.device)
            power = reading.number(POWER)
            if watched is None or power is None:
                continue
            room, limit = watched
            if room in self.night:
                limit = min(limit, self.night[room])
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
