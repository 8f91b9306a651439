"""The DL/T 645 frame: ``[FE…] 68 A0..A5 68 C L DATA CS 16``.

The address is 6 bytes of BCD, the lowest two digits first (``000012345678`` printed on the meter is
``78 56 34 12 00 00`` on the wire). Every data byte is sent plus 0x33 and taken back minus 0x33. The
checksum is the sum, modulo 256, of every byte from the first ``68`` to the last data byte; the ``FE``
wake-up bytes before the frame are not part of it. A reply sets bit 7 of the control code, an abnormal
reply bit 6 as well (its one data byte says what went wrong), and bit 5 says more data follows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntFlag

START = 0x68
END = 0x16
WAKE = 0xFE
MAX_DATA = 200  # the standard's longest data field: anything longer is not a frame
REPLY = 0x80
ABNORMAL = 0x40
FOLLOWS = 0x20
FUNCTION = 0x1F
BROADCAST = "999999999999"  # the time-sync broadcast
WILDCARD = "AAAAAAAAAAAA"  # "whoever is on the bus": reading the address of a lone meter


# The +0x33 of every data byte, both ways, as byte translation tables (a C loop, not a Python one).
_PLUS_33 = bytes((value + 0x33) & 0xFF for value in range(256))
_MINUS_33 = bytes((value - 0x33) & 0xFF for value in range(256))


class FrameError(ValueError):
    """Bytes that are not a DL/T 645 frame (or an address that is not one)."""


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


@functools.lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    """The wire form of a 12-digit address (also the ``AA…`` wildcard and the ``99…`` broadcast)."""
    text = address.upper()
    if len(text) != 12 or not (text.isdigit() or text == WILDCARD):
        raise FrameError(f"a DL/T 645 address is 12 decimal digits, got {address!r}")
    return bytes.fromhex(text)[::-1]


@functools.lru_cache(maxsize=4096)
def address_text(wire: bytes) -> str:
    return wire[::-1].hex().upper()


@dataclass(frozen=True)
class Frame:
    address: str  # 12 digits as printed on the meter
    control: int
    data: bytes = b""  # as meant, without the +0x33

    @property
    def function(self) -> int:
        return self.control & FUNCTION

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)

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


class FrameReader:
    """Frames out of a byte stream that may carry wake-up bytes, line noise, a DTU's heartbeat or half a
    frame: ``feed`` returns the whole frames found so far; what is not part of one is counted in
    ``garbage`` (bytes) and ``bad_frames`` (a frame's shape with a wrong checksum or end byte)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbage = 0
        self.bad_frames = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._skip(len(self._buffer))
                return frames
            self._skip(start)
            buffer = self._buffer
            if len(buffer) < 10:
                return frames  # the header is not all here yet
            if buffer[7] != START or buffer[9] > MAX_DATA:
                self._skip(1)  # a 68 inside noise or inside an address: look further
                continue
            end = 10 + buffer[9] + 2
            if len(buffer) < end:
                return frames
            if buffer[end - 2] != sum(buffer[: end - 2]) & 0xFF or buffer[end - 1] != END:
                self.bad_frames += 1
                self._skip(1)
                continue
            data = bytes(buffer[10 : end - 2]).translate(_MINUS_33)
            frames.append(Frame(address_text(bytes(buffer[1:7])), buffer[8], data))
            del buffer[:end]

    def _skip(self, count: int) -> None:
        if count:
            # Wake-up bytes before a frame are expected, not garbage.
            self.garbage += count - self._buffer.count(WAKE, 0, count)
            del self._buffer[:count]

    def discard(self) -> None:
        """Forget a frame begun but not finished (the connection it came on is gone)."""
        self._buffer.clear()

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)
