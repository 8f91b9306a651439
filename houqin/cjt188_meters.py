"""CJ/T 188 meters (water, heat, gas): their types, the units their values carry, the layout of a
``901F`` read (current data) and the status word, decoded into houqin's fields and units.

Values are BCD, the lowest byte first (``00 77 66 55`` is 556677.00), each followed by a unit byte that
says what it counts in (``2C`` m³, ``29`` L, ``05`` kWh, ...): houqin converts to one unit per field.
The status word (2 bytes) carries the valve (open / closed / abnormal) and a low battery. Which bits:
the standard numbers them D0 (lowest) up; some meters' documentation numbers them from the top, so a
model says which (``status_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

FieldType = Literal["number", "bool", "string"]


class MeterType(StrEnum):
    """A meter's type byte (T), by the name the inventory uses."""

    COLD_WATER = "cold_water"
    HOT_WATER = "hot_water"
    DRINKING_WATER = "drinking_water"
    RECLAIMED_WATER = "reclaimed_water"
    HEAT = "heat"
    COOLING = "cooling"
    GAS = "gas"

    @property
    def code(self) -> int:
        return TYPE_CODES[self]

    @property
    def kind(self) -> str:
        """houqin's device kind: what rules, usage and pages treat the meter as."""
        return {MeterType.HEAT: "heat", MeterType.COOLING: "heat", MeterType.GAS: "gas"}.get(self, "water")


TYPE_CODES = {
    MeterType.COLD_WATER: 0x10,
    MeterType.HOT_WATER: 0x11,
    MeterType.DRINKING_WATER: 0x12,
    MeterType.RECLAIMED_WATER: 0x13,
    MeterType.HEAT: 0x20,
    MeterType.COOLING: 0x21,
    MeterType.GAS: 0x30,
}


class BadReadingError(ValueError):
    """Bytes that are not a reading: not BCD, an unknown unit, the wrong length."""


# Unit byte -> (quantity, factor to houqin's unit of that quantity).
UNITS: dict[int, tuple[str, float]] = {
    0x29: ("volume", 0.001),  # L -> m³
    0x2C: ("volume", 1.0),  # m³
    0x02: ("energy", 0.001),  # Wh -> kWh
    0x05: ("energy", 1.0),  # kWh
    0x08: ("energy", 1000.0),  # MWh
    0x0A: ("energy", 100_000.0),  # MWh × 100
    0x01: ("energy", 1 / 3_600_000),  # J
    0x0B: ("energy", 1 / 3600),  # kJ
    0x0E: ("energy", 1 / 3.6),  # MJ
    0x11: ("energy", 1000 / 3.6),  # GJ
    0x13: ("energy", 100_000 / 3.6),  # GJ × 100
    0x14: ("power", 0.001),  # W -> kW
    0x17: ("power", 1.0),  # kW
    0x1A: ("power", 1000.0),  # MW
    0x32: ("flow", 0.001),  # L/h -> m³/h
    0x35: ("flow", 1.0),  # m³/h
}
UNIT_OF = {"volume": "m3", "energy": "kWh", "power": "kW", "flow": "m3/h"}


def bcd(raw: bytes, decimals: int) -> float:
    digits = raw[::-1].hex()
    if not digits.isdigit():
        raise BadReadingError(f"{raw.hex(' ')} is not BCD")
    return int(digits) / 10.0**decimals


def to_bcd(value: float, size: int, decimals: int) -> bytes:
    """The bytes a meter sends for ``value`` (for simulators and tests)."""
    text = f"{round(value * 10**decimals):0{size * 2}d}"
    if len(text) > size * 2 or value < 0:
        raise BadReadingError(f"{value} does not fit {size} BCD bytes")
    return bytes.fromhex(text)[::-1]


def _quantity(raw: bytes, expected: str) -> float:
    """A 4-byte XXXXXX.XX value and its unit byte, in houqin's unit of ``expected``."""
    unit = UNITS.get(raw[4])
    if unit is None or unit[0] != expected:
        raise BadReadingError(f"unit byte {raw[4]:02X} is not a unit of {expected}")
    return bcd(raw[:4], 2) * unit[1]


class StatusBits(StrEnum):
    LSB_FIRST = "lsb_first"  # D0 is the lowest bit: valve closed 0x01, abnormal 0x03, low battery 0x04
    MSB_FIRST = "msb_first"  # the fields from the top bit down: valve closed 0x40, abnormal 0xC0, low battery 0x20


@dataclass(frozen=True)
class Status:
    valve_closed: bool
    valve_fault: bool
    battery_low: bool

    @classmethod
    def decode(cls, raw: bytes, bits: StatusBits) -> Status:
        first = raw[0]
        if bits is StatusBits.MSB_FIRST:  # the same fields laid out from the top: valve in bits 7-6, battery 5
            valve, battery = first >> 6 & 0x03, first & 0x20
        else:
            valve, battery = first & 0x03, first & 0x04
        return cls(valve_closed=valve == 0x01, valve_fault=valve == 0x03, battery_low=bool(battery))

    def encode(self, bits: StatusBits) -> bytes:
        valve = 0x03 if self.valve_fault else 0x01 if self.valve_closed else 0x00
        if bits is StatusBits.MSB_FIRST:
            return bytes([valve << 6 | (0x20 if self.battery_low else 0), 0])
        return bytes([valve | (0x04 if self.battery_low else 0), 0])

    def fields(self) -> dict[str, float | bool]:
        return {"valve_closed": self.valve_closed, "valve_fault": self.valve_fault, "battery_low": self.battery_low}


STATUS_FIELDS: dict[str, tuple[FieldType, str]] = {
    "valve_closed": ("bool", ""),
    "valve_fault": ("bool", ""),
    "battery_low": ("bool", ""),
}

# A 901F reply's data after DI and SER: water and gas meters 19 bytes, heat meters 43.
WATER_SIZE = 5 + 5 + 7 + 2
HEAT_SIZE = 5 * 5 + 3 + 3 + 3 + 7 + 2


def reading_fields(meter_type: MeterType) -> dict[str, tuple[FieldType, str]]:
    """The fields a 901F read gives for ``meter_type``, with their type and unit (flow is derived)."""
    if meter_type.kind == "heat":
        numbers = {"heat_settlement": "kWh", "heat_energy": "kWh", "heat_power": "kW", "flow_rate": "m3/h",
                   "total": "m3", "supply_temp": "°C", "return_temp": "°C", "hours": "h"}  # fmt: skip
    else:
        numbers = {"total": "m3", "settlement_total": "m3", "flow": "L/min"}
    fields: dict[str, tuple[FieldType, str]] = {name: ("number", unit) for name, unit in numbers.items()}
    return {**fields, **STATUS_FIELDS}


def decode_current(meter_type: MeterType, data: bytes, bits: StatusBits) -> dict[str, float | bool]:
    """The fields of a 901F reply's data (after DI and SER). ``flow`` is not here: it is derived from
    the totalizer over time by the reader of a meter."""
    if meter_type.kind == "heat":
        if len(data) != HEAT_SIZE:
            raise BadReadingError(f"a heat meter's current data is {HEAT_SIZE} bytes, got {len(data)}")
        fields: dict[str, float | bool] = {
            "heat_settlement": _quantity(data[0:5], "energy"),
            "heat_energy": _quantity(data[5:10], "energy"),
            "heat_power": _quantity(data[10:15], "power"),
            "flow_rate": _quantity(data[15:20], "flow"),
            "total": _quantity(data[20:25], "volume"),
            "supply_temp": bcd(data[25:28], 2),
            "return_temp": bcd(data[28:31], 2),
            "hours": bcd(data[31:34], 0),
        }
    else:
        if len(data) != WATER_SIZE:
            raise BadReadingError(f"a {meter_type}'s current data is {WATER_SIZE} bytes, got {len(data)}")
        fields = {"total": _quantity(data[0:5], "volume"), "settlement_total": _quantity(data[5:10], "volume")}
    return {**fields, **Status.decode(data[-2:], bits).fields()}


class ValveAction(StrEnum):
    """The valve command (write DI A017): its byte."""

    OPEN = "open"
    CLOSE = "close"

    @property
    def code(self) -> int:
        return 0x55 if self is ValveAction.OPEN else 0x99

    @property
    def closes(self) -> bool:
        return self is ValveAction.CLOSE
