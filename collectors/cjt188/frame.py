"""The CJ/T 188 frame: ``[FE…] 68 T A0..A6 C L DATA CS 16``.

T is the meter type (10 cold water ... 30 gas). The address is 7 bytes of BCD, the lowest first
(A5-A6 are the maker's code): ``78330011223344`` printed is ``44 33 22 11 00 33 78`` on the wire.
Unlike DL/T 645 the data bytes are sent as they are (no +0x33). The checksum is the sum, modulo 256, of
every byte from ``68`` to the last data byte. A reply sets bit 7 of the control code, an abnormal reply
bit 6 as well (its data: the sequence number and the status word).
"""

from __future__ import annotations

from dataclasses import dataclass

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

HEADER = 11  # 68 T A0..A6 C L
MAX_DATA = 100  # longer than any reply houqin asks for: a longer "frame" is noise
WILDCARD = "AAAAAAAAAAAAAA"  # "whoever is on the bus": reading the address of a lone meter
WILDCARD_TYPE = 0xAA


def address_bytes(address: str) -> bytes:
    return meter_frames.address_bytes(address, 14, WILDCARD, "CJ/T 188")


@dataclass(frozen=True)
class Frame(ControlCode):
    FUNCTION = 0x3F
    meter_type: int
    address: str  # 14 digits as printed on the meter
    control: int
    data: bytes = b""

    def encode(self, wake: int = 2) -> bytes:
        if len(self.data) > MAX_DATA:
            raise FrameError(f"{len(self.data)} data bytes: at most {MAX_DATA}")
        body = bytes([START, self.meter_type, *address_bytes(self.address), self.control, len(self.data)]) + self.data
        return bytes([WAKE] * wake) + body + bytes([sum(body) & 0xFF, END])


class FrameReader(FrameScanner[Frame]):
    """188 frames out of a byte stream (wake-up bytes, noise, a DTU's heartbeat, half a frame)."""

    HEADER = HEADER

    def _frame_end(self, buffer: bytearray) -> int | None:
        size = buffer[10]
        return None if size > MAX_DATA else HEADER + size + 2

    def _frame(self, buffer: bytearray, end: int) -> Frame:
        return Frame(buffer[1], address_text(bytes(buffer[2:9])), buffer[9], bytes(buffer[HEADER : end - 2]))


__all__ = ["ABNORMAL", "END", "REPLY", "START", "WAKE", "FrameError", "address_text"]
