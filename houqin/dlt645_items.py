"""The data identifiers (DI) houqin reads from DL/T 645 meters, and their formats: what the inventory
checks a 645 model's items against, and what the 645 link decodes a reply with.

A value is BCD, the lowest byte first, with a fixed number of decimals; where the quantity can be
negative (current, power, power factor) the top bit of the highest byte is the sign. Values are given
in houqin's units (power in W, as the Modbus profiles give it; the meter says kW).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Version(StrEnum):
    V2007 = "2007"
    V1997 = "1997"


class BadValueError(ValueError):
    """Bytes that are not a value of the format expected: not BCD, or the wrong length."""


@dataclass(frozen=True)
class DataItem:
    di: int  # 4 bytes in 2007, 2 in 1997
    field: str  # houqin's field name
    size: int  # bytes of the value
    decimals: int
    unit: str = ""
    signed: bool = False
    scale: float = 1.0  # to houqin's unit (kW → W: 1000)
    bits: bool = False  # a status word: the raw bits, not a number (its field is what houqin reads from them)

    def decode(self, raw: bytes) -> float:
        if len(raw) != self.size:
            raise BadValueError(f"DI {self.di:08X}: {len(raw)} bytes, expected {self.size}")
        if self.bits:
            return float(int.from_bytes(raw, "little"))
        digits = bytearray(raw[::-1])  # highest byte first
        negative = self.signed and bool(digits[0] & 0x80)
        if self.signed:
            digits[0] &= 0x7F
        text = digits.hex()
        if not text.isdigit():
            raise BadValueError(f"DI {self.di:08X}: {raw.hex(' ')} is not BCD")
        value = int(text) / 10.0**self.decimals * self.scale
        return -value if negative else value

    def encode(self, value: float) -> bytes:
        """The bytes a meter sends for ``value`` (for simulators and tests)."""
        if self.bits:
            return int(value).to_bytes(self.size, "little")
        number = round(abs(value) / self.scale * 10**self.decimals)
        text = f"{number:0{self.size * 2}d}"
        if len(text) > self.size * 2:
            raise BadValueError(f"DI {self.di:08X}: {value} does not fit {self.size} bytes")
        digits = bytearray.fromhex(text)
        if self.signed:
            if digits[0] & 0x80:
                raise BadValueError(f"DI {self.di:08X}: {value} does not fit beside the sign bit")
            if value < 0:
                digits[0] |= 0x80
        return bytes(digits[::-1])


# Status word 3 (DI 04000503), bit 4: the relay is open (0 = closed, power on).
RELAY_OPEN_BIT = 0x0010

ITEMS_2007 = {
    item.di: item
    for item in (
        DataItem(0x00000000, "energy", 4, 2, "kWh"),  # combined active energy, total
        DataItem(0x00010000, "import_energy", 4, 2, "kWh"),
        DataItem(0x00020000, "export_energy", 4, 2, "kWh"),
        DataItem(0x02010100, "voltage", 2, 1, "V"),
        DataItem(0x02020100, "current", 3, 3, "A", signed=True),
        DataItem(0x02030000, "power", 3, 4, "W", signed=True, scale=1000.0),
        DataItem(0x02060000, "power_factor", 2, 3, signed=True),
        DataItem(0x02800002, "frequency", 2, 2, "Hz"),
        DataItem(0x04000503, "relay_closed", 2, 0, bits=True),  # status word 3: bit 4 is the relay
    )
}
ITEMS_1997 = {
    item.di: item
    for item in (
        DataItem(0x9010, "energy", 4, 2, "kWh"),  # forward active energy, total: what a 1997 meter bills
        DataItem(0x9020, "export_energy", 4, 2, "kWh"),
        DataItem(0xB611, "voltage", 2, 0, "V"),
        DataItem(0xB621, "current", 2, 2, "A"),
        DataItem(0xB630, "power", 3, 4, "W", signed=True, scale=1000.0),
        DataItem(0xB650, "power_factor", 2, 3, signed=True),
    )
}
ITEMS = {Version.V2007: ITEMS_2007, Version.V1997: ITEMS_1997}
DI_SIZE = {Version.V2007: 4, Version.V1997: 2}


class RelayAction(IntEnum):
    """N1 of a relay control command (0x1C); a model's command actions name them in lower case."""

    TRIP = 0x1A  # 拉闸
    CLOSE_ALLOWED = 0x1B  # 合闸允许: the user closes it at the meter
    CLOSE = 0x1C  # 直接合闸
    ALARM = 0x2A
    ALARM_RELEASE = 0x2B
    KEEP_POWER = 0x3A  # 保电: no trip whatever the balance
    KEEP_POWER_RELEASE = 0x3B

    @property
    def closes(self) -> bool | None:
        """The relay state this action leaves, when a read of status word 3 can confirm it."""
        return {RelayAction.TRIP: False, RelayAction.CLOSE: True}.get(self)


STATUS_WORD_3 = 0x04000503
