"""High-power appliance detection (恶性负载识别) in the power policy: a pipeline sink that watches room
meters and trips a room the moment a kettle, a heater or a hot plate shows its signature — a step in
active power of at least the room's ``step_w`` over where the power stood, resistive (power factor at
or above ``min_power_factor`` where the meter reports it: a hair dryer's motor or a laptop's supply
draws well below 0.95), held for ``hold_s``. A step inside a band the policy allows (a registered water
dispenser) is let through; an exempt room is never tripped by signature. The trip, the restore after
``restore_min`` and the lock after repeated trips are ``PowerPolicy.appliance_trip``'s.

Where the power "stood" is the lowest reading of the last minute before the rise, so a steady load
(a fan, a laptop) is the baseline and only what is switched on on top of it counts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from houqin.billing.policy import ApplianceSeen, PowerPolicy
from houqin.inventory import Inventory
from houqin.inventory.power import AppliancePolicy
from houqin.readings import Reading

log = logging.getLogger(__name__)

POWER, POWER_FACTOR = "power", "power_factor"
BASELINE = timedelta(seconds=60)


@dataclass
class _Room:
    id: str
    policy: AppliancePolicy
    recent: deque[tuple[datetime, float]] = field(default_factory=deque)  # the last minute's power
    rising_since: datetime | None = None
    baseline: float = 0.0
    allowed_said: bool = False


class ApplianceGuard:
    name = "appliances"

    def __init__(self, inventory: Inventory, policy: PowerPolicy) -> None:
        self.policy = policy
        self.rooms: dict[str, _Room] = {}  # meter -> the room it guards
        for room in inventory.rooms.values():
            rule = inventory.appliance_policy(room)
            if not rule.exempt:
                self.rooms[room.meter] = _Room(room.id, rule)
        self.trips = 0
        self.allowed = 0

    async def consume(self, readings: Sequence[Reading]) -> None:
        for reading in readings:
            room = self.rooms.get(reading.device)
            power = reading.number(POWER)
            if room is None or power is None:
                continue
            factor = reading.number(POWER_FACTOR)
            await self._watch(room, reading.ts, power, None if factor is None else abs(factor))

    async def _watch(self, room: _Room, ts: datetime, power: float, pf: float | None) -> None:
        rule = room.policy
        while room.recent and ts - room.recent[0][0] > BASELINE:
            room.recent.popleft()
        baseline = room.baseline if room.rising_since is not None else min((p for _, p in room.recent), default=power)
        room.recent.append((ts, power))
        step = power - baseline
        resistive = pf is None or pf >= rule.min_power_factor
        if step < rule.step_w or not resistive:
            room.rising_since, room.allowed_said = None, False
            return
        if room.rising_since is None:
            room.rising_since, room.baseline = ts, baseline
            return
        if ts - room.rising_since < timedelta(seconds=rule.hold_s):
            return
        band = rule.allowed(step)
        if band is not None:
            if not room.allowed_said:
                room.allowed_said = True
                self.allowed += 1
                log.info("room %s: +%.0f W is within the allowed %s (%g-%g W): not tripped", room.id, step,
                         band.name, band.from_w, band.to_w)  # fmt: skip
            return
        room.rising_since = None
        room.recent.clear()  # the trip takes the power away: the next baseline starts after it
        if await self.policy.appliance_trip(room.id, ts, ApplianceSeen(step, power, pf), rule):
            self.trips += 1
            log.warning("room %s tripped: a high-power appliance, +%.0f W over %.0f W%s", room.id, step, baseline,
                        "" if pf is None else f", power factor {pf:.2f}")  # fmt: skip
