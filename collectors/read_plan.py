"""Block-read planning: a device's fields read in as few Modbus requests as the protocol allows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from houqin.inventory.model import RegisterField

# Modbus application protocol limits per request (function codes 1-4).
MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers (or bits) of ``table`` from ``address``, feeding ``fields``."""

    table: str
    address: int
    count: int
    fields: tuple[RegisterField, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    def slice_of(self, field: RegisterField) -> slice:
        """Where ``field``'s registers sit in this block's response."""
        start = field.address - self.address
        return slice(start, start + field.count)


def plan_reads(
    fields: Iterable[RegisterField],
    max_gap: int = 16,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[ReadBlock]:
    """Coalesce fields of one table whose addresses are at most ``max_gap`` apart into one request.

    Reading a few unused registers costs far less on a 9,600-baud bus than another request
    (each request adds its turnaround and the inter-frame silence); ``max_gap`` 0 reads only
    contiguous runs, for devices that answer an exception to unmapped addresses.
    """
    by_table: dict[str, list[RegisterField]] = {}
    for field in fields:
        by_table.setdefault(field.table, []).append(field)
    blocks: list[ReadBlock] = []
    for table in sorted(by_table):
        limit = max_bits if table in {"coil", "discrete"} else max_registers
        start = end = -1
        members: list[RegisterField] = []
        for field in sorted(by_table[table], key=lambda f: (f.address, f.count)):
            field_end = field.address + field.count
            fits = members and field.address - end <= max_gap and max(end, field_end) - start <= limit
            if fits:
                end = max(end, field_end)
                members.append(field)
                continue
            if members:
                blocks.append(ReadBlock(table, start, end - start, tuple(members)))
            start, end, members = field.address, field_end, [field]
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks
