"""Time on an RS-485 bus, for simulators that must be honest in benchmarks.

At 9,600 baud a character (start, 8 data, parity or second stop bit, stop: 11 bits) takes 1.15 ms; a frame
is followed by at least 3.5 characters of silence, and a device needs a few milliseconds to answer.
Only one frame is on the wire at a time, so a bus has a hard ceiling of requests per second that no
software can beat: this module computes it, and simulators hold the bus for exactly that long.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from collectors.read_plan import plan_reads
from houqin.inventory.model import RegisterField

READ_REQUEST_BYTES = 8  # address, function, start (2), count (2), CRC (2)
RESPONSE_OVERHEAD_BYTES = 5  # address, function, byte count, CRC (2)


@dataclass
class Rs485Bus:
    baudrate: int = 9600
    bits_per_char: int = 11
    turnaround: float = 0.004  # the device's time to prepare its answer
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def char_time(self) -> float:
        return self.bits_per_char / self.baudrate

    @property
    def silence(self) -> float:
        # Modbus RTU: 3.5 characters between frames; a fixed 1.75 ms above 19,200 baud.
        return 3.5 * self.char_time if self.baudrate <= 19200 else 0.00175

    def exchange_time(self, request_bytes: int, response_bytes: int) -> float:
        """Wire time of one request and its answer, silences and the device's turnaround included."""
        return (request_bytes + response_bytes) * self.char_time + 2 * self.silence + self.turnaround

    def read_time(self, table: str, count: int) -> float:
        data = (count + 7) // 8 if table in {"coil", "discrete"} else 2 * count
        return self.exchange_time(READ_REQUEST_BYTES, RESPONSE_OVERHEAD_BYTES + data)

    def poll_time(self, blocks: list[tuple[str, int]]) -> float:
        """The least time one poll of a device (its block reads) can take on this bus."""
        return sum(self.read_time(table, count) for table, count in blocks)

    async def hold(self, table: str, count: int) -> None:
        async with self.lock:
            await asyncio.sleep(self.read_time(table, count))


def blocks_of(fields: list[RegisterField], max_gap: int) -> list[tuple[str, int]]:
    """(table, count) of each block read that polling these fields takes."""
    return [(block.table, block.count) for block in plan_reads(fields, max_gap=max_gap)]
