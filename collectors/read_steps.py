"""What one poll of a device reads, step by step, whatever its protocol: a Modbus device is read in
register blocks (``read_plan``), a DL/T 645 meter one data identifier at a time, a CJ/T 188 meter by its
current data. The bus poller runs the steps in order, retries the step that timed out, and knows nothing
else of the protocol."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from collectors.cjt188.link import Cjt188Link
from collectors.dlt645.link import Dlt645Link
from collectors.modbus_link import ModbusLink
from collectors.read_plan import plan_reads
from collectors.registers import BlockDecoder, Value
from houqin.cjt188_meters import BadReadingError
from houqin.dlt645_items import ITEMS, RELAY_OPEN_BIT, BadValueError, DataItem, Version
from houqin.inventory.devices import Cjt188Map
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


class Cjt188Current:
    """A CJ/T 188 meter's current data. A water or gas meter reports its totalizer only, so its ``flow``
    (L/min, what the leak rules watch) is worked out here: the totalizer's advance over at least the
    model's ``flow_window`` (a totalizer in 0.01 m³ steps moves once per 10 L, so a shorter window would
    read a steady trickle as bursts and silences)."""

    def __init__(self, link: Cjt188Link, meter: Cjt188Map) -> None:
        self.link = link
        self.meter = meter
        self._history: dict[str, deque[tuple[float, float]]] = {}  # device -> (monotonic time, m³)

    async def read(self, device: Device, garbage: Garbage) -> dict[str, Value]:
        try:
            fields: dict[str, Value] = dict(await self.link.read_current(device.address or "", self.meter))
        except BadReadingError as exc:
            garbage(str(exc))
            return {}
        if self.meter.type.kind != "heat":
            flow = self._flow(device.id, time.monotonic(), float(fields["total"]))
            if flow is not None:
                fields["flow"] = flow
        return fields

    def _flow(self, device_id: str, now: float, total: float) -> float | None:
        history = self._history.setdefault(device_id, deque())
        if history and total < history[-1][1]:
            history.clear()  # a meter replaced or reset: start again
        history.append((now, total))
        window = self.meter.flow_window
        # Keep the newest sample at least a window old, and everything after it.
        while len(history) > 2 and now - history[1][0] >= window:
            history.popleft()
        then, before = history[0]
        if now - then < window:
            return None
        return (total - before) * 1000.0 / ((now - then) / 60.0)


def read_steps(link: ModbusLink | Dlt645Link | Cjt188Link, model: DeviceModel) -> list[ReadStep]:
    """The steps of one poll of a device of ``model`` behind ``link`` (shared by the model's devices)."""
    if isinstance(link, Cjt188Link):
        assert model.cjt188 is not None
        return [Cjt188Current(link, model.cjt188)]
    if isinstance(link, Dlt645Link):
        assert model.dlt645 is not None
        version = Version(model.dlt645.version)
        return [Dlt645Item(link, ITEMS[version][di], version) for di in model.dlt645.item_ids()]
    plan = plan_reads(model.registers, max_gap=model.max_read_gap)
    return [ModbusBlock(link, BlockDecoder(block)) for block in plan]
