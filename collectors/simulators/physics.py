"""What simulated devices measure: dorm loads over the day, energy that integrates power, relays that cut
it, lighting circuits that draw current when on, and injectable faults.

Values are computed when a device is read, from the wall-clock time since its previous read, so a
simulator costs nothing between polls and energy is exact whatever the poll interval.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

# Typical dorm room demand (W) by hour of day: asleep, out at class, evening peak.
DORM_PROFILE = (60, 50, 45, 45, 45, 50, 90, 160, 120, 80, 80, 90, 180, 150, 90, 90, 100, 160,
                320, 480, 560, 600, 520, 260)  # fmt: skip


def dorm_load(tz: ZoneInfo) -> Callable[[float], float]:
    def load(now: float) -> float:
        local = datetime.fromtimestamp(now, tz)
        hour = local.hour + local.minute / 60
        low, high = DORM_PROFILE[int(hour) % 24], DORM_PROFILE[(int(hour) + 1) % 24]
        return low + (high - low) * (hour - int(hour))

    return load


def starting_counter(device_id: str, kind: str, room_meter: bool, protocol: str = "modbus") -> float:
    """Where a simulated meter's counter stands when the simulation starts (kWh, or m³ of water): fixed by
    the device's id, so weeks of history made up to that moment (``history``) meet it exactly."""
    spread = sum(map(ord, device_id))
    if kind == "water":
        return 200.0 + spread % 300 if protocol == "cjt188" else 1000.0 + spread % 500
    return 500.0 + spread % 1000 if room_meter else 120_000.0


# Faults that plug an appliance in: (W, power factor). A kettle or heater is resistive; a hair dryer's
# motor is not.
APPLIANCES = {"illegal_appliance": (1800.0, 1.0), "hair_dryer": (1200.0, 0.8)}


@dataclass
class MeterPhysics:
    """An electricity meter on a feed whose demand follows ``load`` (W, at the given wall time)."""

    load: Callable[[float], float]
    phases: int = 1
    energy_kwh: float = 0.0
    nominal_voltage: float = 230.0
    power_factor: float = 0.95
    noise: float = 0.05
    powered: Callable[[], bool] = lambda: True
    faults: set[str] = field(default_factory=set)
    _last: float | None = None
    _stuck: dict[str, float] | None = None
    rng: random.Random = field(default_factory=random.Random)

    def sample(self, now: float | None = None) -> dict[str, float]:
        now = time.time() if now is None else now
        on = self.powered()
        power = self.load(now) * (1 + self.rng.uniform(-self.noise, self.noise)) if on else 0.0
        # The room's own load at the meter's power factor, plus what is plugged in on top: the meter sees
        # the sum of real and of reactive power, so its power factor is the mix.
        reactive = power * math.tan(math.acos(self.power_factor))
        for fault, (watts, factor) in APPLIANCES.items():
            if on and fault in self.faults:
                power += watts
                reactive += watts * math.tan(math.acos(factor))
        if self._last is not None and now > self._last:
            self.energy_kwh += power * (now - self._last) / 3_600_000
        self._last = now
        voltage = self.nominal_voltage * (0.82 if "voltage_sag" in self.faults else 1.0)
        voltage += self.rng.uniform(-1.5, 1.5)
        apparent = math.hypot(power, reactive)
        factor = power / apparent if apparent else 1.0
        current = apparent / voltage
        values = {
            "voltage": voltage, "current": current, "power": power, "apparent_power": apparent,
            "reactive_power": reactive, "power_factor": factor,
            "frequency": 50.0 + self.rng.uniform(-0.03, 0.03), "import_energy": self.energy_kwh,
            "export_energy": 0.0, "energy": self.energy_kwh,
        }  # fmt: skip
        if self.phases == 3:
            # Three phases that add up: the total is exactly the sum of the phase powers.
            shares = (0.36, 0.33, 0.31)
            for index, share in enumerate(shares, 1):
                phase_power = power * share
                phase_voltage = voltage + self.rng.uniform(-1.0, 1.0)
                values[f"power_l{index}"] = phase_power
                values[f"voltage_l{index}"] = phase_voltage
                values[f"current_l{index}"] = phase_power / (phase_voltage * factor) if power else 0.0
        if "stuck_value" in self.faults:
            self._stuck = self._stuck or values
            return self._stuck
        self._stuck = None
        return values


@dataclass
class LightingPhysics:
    """A lighting controller: each circuit draws its lamps' current when switched on."""

    amps_per_circuit: float = 1.2
    faults: set[str] = field(default_factory=set)

    def current(self, on: bool) -> float:
        if not on or "lamp_failure" in self.faults:
            return 0.0
        return self.amps_per_circuit


# Building water use (L/min) by hour: showers morning and evening, almost nothing at night.
WATER_PROFILE = (0.3, 0.2, 0.2, 0.2, 0.3, 1.0, 8.0, 14.0, 9.0, 5.0, 4.0, 5.0, 9.0, 7.0, 4.0, 4.0, 5.0, 8.0,
                 10.0, 12.0, 14.0, 15.0, 10.0, 3.0)  # fmt: skip
LEAK_FLOW = 6.0


def water_flow(hour: int, faults: set[str]) -> float:
    """A water meter's flow (L/min) at ``hour`` local time; a leak adds a steady flow day and night."""
    flow = WATER_PROFILE[hour] * random.uniform(0.8, 1.2)  # noqa: S311 - simulation
    return flow + LEAK_FLOW if "leak" in faults else flow
