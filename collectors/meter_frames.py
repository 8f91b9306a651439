"""What the DL/T 645 and CJ/T 188 frames share: a BCD address printed highest digit first and sent lowest
byte first, a control code whose bit 7 marks a reply and bit 6 an abnormal one, and a stream scanner that
finds ``68 … CS 16`` frames among wake-up bytes, noise, heartbeats and halves, counting what is not one."""

from __future__ import annotations

import functools
from typing import ClassVar, Generic, TypeVar

START = 0x68
END = 0x16
WAKE = 0xFE
REPLY = 0x80
ABNORMAL = 0x40

F = TypeVar("F")


class FrameError(ValueError):
    """Bytes that are not a frame of the protocol (or an address that is not one)."""


@functools.lru_cache(maxsize=8192)
def address_bytes(address: str, digits: int, wildcard: str, standard: str) -> bytes:
    """The wire form of an address of ``digits`` BCD digits (or the protocol's ``AA…`` wildcard)."""
    text = address.upper()
    if len(text) != digits or not (text.isdigit() or text == wildcard):
        raise FrameError(f"a {standard} address is {digits} decimal digits, got {address!r}")
    return bytes.fromhex(text)[::-1]


@functools.lru_cache(maxsize=8192)
def address_text(wire: bytes) -> str:
    return wire[::-1].hex().upper()


class ControlCode:
    """The control code's meaning, for a frame class with a ``control`` field."""

    FUNCTION: ClassVar[int]
    control: int

    @property
    def function(self) -> int:
        return self.control & self.FUNCTION

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)


class FrameScanner(Generic[F]):
    """Frames out of a byte stream: ``feed`` returns the whole frames found so far; what is not part of
    one is counted in ``garbage`` (bytes; wake-up bytes before a frame are expected, not garbage) and
    ``bad_frames`` (a frame's shape with a wrong checksum or end byte). A protocol says how long its
    header is, where a frame's length is and whether a ``68`` starts a frame at all (``_frame_end``),
    and builds its frame from the bytes (``_frame``)."""

    HEADER: ClassVar[int]

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.garbage = 0
        self.bad_frames = 0

    def _frame_end(self, buffer: bytearray) -> int | None:
        """Where the frame starting the buffer ends, or None when this ``68`` starts no frame."""
        raise NotImplementedError

    def _frame(self, buffer: bytearray, end: int) -> F:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[F]:
        self._buffer += data
        frames: list[F] = []
        while True:
            start = self._buffer.find(START)
            if start < 0:
                self._skip(len(self._buffer))
                return frames
            self._skip(start)
            buffer = self._buffer
            if len(buffer) < self.HEADER:
                return frames  # the header is not all here yet
            end = self._frame_end(buffer)
            if end is None:
                self._skip(1)  # a 68 inside noise or inside an address: look further
                continue
            if len(buffer) < end:
                return frames
            if buffer[end - 2] != sum(buffer[: end - 2]) & 0xFF or buffer[end - 1] != END:
                self.bad_frames += 1
                self._skip(1)
                continue
            frames.append(self._frame(buffer, end))
            del buffer[:end]

    def _skip(self, count: int) -> None:
        if count:
            self.garbage += count - self._buffer.count(WAKE, 0, count)
            del self._buffer[:count]

    def discard(self) -> None:
        """Forget a frame begun but not finished (the connection it came on is gone)."""
        self._buffer.clear()

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)
