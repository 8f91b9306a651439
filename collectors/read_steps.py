"""What one poll of a device reads, step by step, whatever its protocol: a Modbus device is read in
register blocks (``read_plan``), a DL/T 645 meter one data identifier at a time. The bus poller runs the
steps in order, retries the step that timed out, and knows nothing else of the protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from collectors.dlt645.link import Dlt645Link
from collectors.modbus_link import ModbusLink
from collectors.read_plan import plan_reads
from collectors.registers import BlockDecoder, Value
from houqin.dlt645_items import ITEMS, RELAY_OPEN_BIT, BadValueError, DataItem, Version
from houqin.inventory.model import Device, DeviceModel

Garbage = Callable[[str], None]


class ReadStep(Protocol):
    async def read(self, device: Device, garbage: Garbage) -> dict[str, Value]: ...


@dataclass(frozen=True)
class ModbusBlock:
    link: ModbusLink
    decoder: BlockDecoder

    async def read(self, device: Device, garbage: Garbage) -> dict[str, Value]:
        block = self.decoder.block
        data = await self.link.read(device.unit or 0, block.table, block.address, block.count)
        return self.decoder.decode(data, garbage)


@dataclass(frozen=True)
class Dlt645Item:
    link: Dlt645Link
    item: DataItem
    version: Version

    async def read(self, device: Device, garbage: Garbage) -> dict[str, Value]:
        try:
            value = await self.link.read(device.address or "", self.item, self.version)
        except BadValueError as exc:
            garbage(str(exc))
            return {}
        if self.item.bits:
            # Status word 3 carries the relay's state: the field houqin's relays report.
            return {self.item.field: not int(value) & RELAY_OPEN_BIT}
        return {self.item.field: value}


def read_steps(link: ModbusLink | Dlt645Link, model: DeviceModel) -> list[ReadStep]:
    """The steps of one poll of a device of ``model`` behind ``link`` (shared by the model's devices)."""
    if isinstance(link, Dlt645Link):
        assert model.dlt645 is not None
        version = Version(model.dlt645.version)
        return [Dlt645Item(link, ITEMS[version][di], version) for di in model.dlt645.item_ids()]
    plan = plan_reads(model.registers, max_gap=model.max_read_gap)
    return [ModbusBlock(link, BlockDecoder(block)) for block in plan]
