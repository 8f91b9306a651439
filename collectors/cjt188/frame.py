"""The CJ/T 188 frame: ``[FE…] 68 T A0..A6 C L DATA CS 16``.

T is the meter type (10 cold water ... 30 gas). The address is 7 bytes of BCD, the lowest first
(A5-A6 are the maker's code): ``78330011223344`` printed is ``44 33 22 11 00 33 78`` on the wire.
Unlike DL/T 645 the data bytes are sent as they are (no +0x33). The checksum is the sum, modulo 256, of
every byte from ``68`` to the last data byte. A reply sets bit 7 of the control code, an abnormal reply
bit 6 as well (its data: the sequence number and the status word).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

START = 0x68
END = 0x16
WAKE = 0xFE
HEADER = 11  # 68 T A0..A6 C L
MAX_DATA = 100  # longer than any reply houqin asks for: a longer "frame" is noise
REPLY = 0x80
ABNORMAL = 0x40
FUNCTION = 0x3F
WILDCARD = "AAAAAAAAAAAAAA"  # "whoever is on the bus": reading the address of a lone meter
WILDCARD_TYPE = 0xAA


class FrameError(ValueError):
    """Bytes that are not a CJ/T 188 frame (or an address that is not one)."""


@functools.lru_cache(maxsize=4096)
def address_bytes(address: str) -> bytes:
    text = address.upper()
    if len(text) != 14 or not (text.isdigit() or text == WILDCARD):
        raise FrameError(f"a CJ/T 188 address is 14 decimal digits, got {address!r}")
    return bytes.fromhex(text)[::-1]


@functools.lru_cache(maxsize=4096)
def address_text(wire: bytes) -> str:
    return wire[::-1].hex().upper()


@dataclass(frozen=True)
class Frame:
    meter_type: int
    address: str  # 14 digits as printed on the meter
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        return self.control & FUNCTION

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)

    def encode(self, wake: int = 2) -> bytes:
        if len(self.data) > MAX_DATA:
            raise FrameError(f"{len(self.data)} data bytes: at most {MAX_DATA}")
        body = bytes([START, self.meter_type, *address_bytes(self.address), self.control, len(self.data)]) + self.data
        return bytes([WAKE] * wake) + body + bytes([sum(body) & 0xFF, END])


class FrameReader:
    """Frames out of a byte stream (wake-up bytes, noise, a DTU's heartbeat, half a frame); what is not
    part of one is counted in ``garbage`` (bytes) and ``bad_frames`` (a wrong checksum or end byte)."""

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
            if len(buffer) < HEADER:
                return frames
            size = buffer[10]
            if size > MAX_DATA:
                self._skip(1)  # a 68 inside noise: look further
                continue
            end = HEADER + size + 2
            if len(buffer) < end:
                return frames
            if buffer[end - 2] != sum(buffer[: end - 2]) & 0xFF or buffer[end - 1] != END:
                self.bad_frames += 1
                self._skip(1)
                continue
            frames.append(
                Frame(buffer[1], address_text(bytes(buffer[2:9])), buffer[9], bytes(buffer[HEADER : end - 2]))
            )
            del buffer[:end]

    def _skip(self, count: int) -> None:
        if count:
            self.garbage += count - self._buffer.count(WAKE, 0, count)
            del self._buffer[:count]

    def discard(self) -> None:
        self._buffer.clear()
