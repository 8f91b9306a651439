"""The DL/T 645 frame: ``[FE…] 68 A0..A5 68 C L DATA CS 16``.

The address is 6 bytes of BCD, the lowest two digits first (``000012345678`` printed on the meter is
``78 56 34 12 00 00`` on the wire). Every data byte is sent plus 0x33 and taken back minus 0x33. The
checksum is the sum, modulo 256, of every byte from the first ``68`` to the last data byte; the ``FE``
wake-up bytes before the frame are not part of it. A reply sets bit 7 of the control code, an abnormal
reply bit 6 as well (its one data byte says what went wrong), and bit 5 says more data follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag

from collectors import meter_frames
from collectors.meter_frames import (
    ABNORMAL,
    END,
    REPLY,
    START,
    WAKE,
    ControlCode,
    FrameError,
    FrameScanner,
    address_text,
)

MAX_DATA = 200  # the standard's longest data field: anything longer is not a frame
FOLLOWS = 0x20
BROADCAST = "999999999999"  # the time-sync broadcast
WILDCARD = "AAAAAAAAAAAA"  # "whoever is on the bus": reading the address of a lone meter


# The +0x33 of every data byte, both ways, as byte translation tables (a C loop, not a Python one).
_PLUS_33 = bytes((value + 0x33) & 0xFF for value in range(256))
_MINUS_33 = bytes((value - 0x33) & 0xFF for value in range(256))


class MeterError(IntFlag):
    """The error byte of an abnormal reply (DL/T 645-2007, the ERR field)."""

    OTHER = 0x01
    NO_DATA = 0x02
    PASSWORD = 0x04
    BAUD_RATE = 0x08
    YEAR_ZONES = 0x10
    DAY_PERIODS = 0x20
    TARIFFS = 0x40

    def describe(self) -> str:
        names = {
            MeterError.OTHER: "other error",
            MeterError.NO_DATA: "no requested data",
            MeterError.PASSWORD: "password wrong or not authorised",
            MeterError.BAUD_RATE: "baud rate cannot change",
            MeterError.YEAR_ZONES: "too many year time zones",
            MeterError.DAY_PERIODS: "too many day periods",
            MeterError.TARIFFS: "too many tariffs",
        }
        said = [text for flag, text in names.items() if flag in self]
        return ", ".join(said) or f"error byte {int(self):#04x}"


def address_bytes(address: str) -> bytes:
    """The wire form of a 12-digit address (also the ``AA…`` wildcard and the ``99…`` broadcast)."""
    return meter_frames.address_bytes(address, 12, WILDCARD, "DL/T 645")


@dataclass(frozen=True)
class Frame(ControlCode):
    FUNCTION = 0x1F
    address: str  # 12 digits as printed on the meter
    control: int
    data: bytes = b""  # as meant, without the +0x33

    @property
    def follows(self) -> bool:
        return bool(self.control & FOLLOWS)

    def error(self) -> MeterError:
        """What an abnormal reply says went wrong."""
        return MeterError(self.data[0] if self.data else 0)

    def encode(self, wake: int = 4) -> bytes:
        """The frame on the wire, after ``wake`` FE bytes (0 to 4; many meters need them to wake)."""
        if len(self.data) > MAX_DATA:
            raise FrameError(f"{len(self.data)} data bytes: at most {MAX_DATA}")
        body = bytes([START, *address_bytes(self.address), START, self.control, len(self.data)])
        body += self.data.translate(_PLUS_33)
        return bytes([WAKE] * wake) + body + bytes([sum(body) & 0xFF, END])


class FrameReader(FrameScanner[Frame]):
    """645 frames out of a byte stream that may carry wake-up bytes, line noise, a DTU's heartbeat or half
    a frame: ``68 A0..A5 68 C L``, the second ``68`` and the length checked before a frame is believed."""

    HEADER = 10

    def _frame_end(self, buffer: bytearray) -> int | None:
        if buffer[7] != START or buffer[9] > MAX_DATA:
            return None
        return self.HEADER + buffer[9] + 2

    def _frame(self, buffer: bytearray, end: int) -> Frame:
        data = bytes(buffer[10 : end - 2]).translate(_MINUS_33)
        return Frame(address_text(bytes(buffer[1:7])), buffer[8], data)


__all__ = ["ABNORMAL", "END", "REPLY", "START", "WAKE", "FrameError", "address_text"]
