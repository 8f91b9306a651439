"""Simulated Modbus devices behind a simulated gateway (a pymodbus server on a real socket).

A device serves its model's register map from a table of field values that its owner (a behaviour, a
test) sets; reads encode the current values, coil and register writes update them, exactly as the
collectors decode them. ``reply_delay`` makes the device answer late, as a device on a noisy or
overloaded bus does; ``offline`` makes it answer far too late (a dead device on RS-485 answers nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from collectors.registers import Value, encode_field
from collectors.simulators.rs485 import Rs485Bus
from houqin.inventory.model import DeviceModel, RegisterField

_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
                4: "input"}  # fmt: skip
_WRITES = frozenset({5, 6, 15, 16})
OFFLINE_DELAY = 3600.0


class SimulatedModbusDevice:
    def __init__(self, unit: int, model: DeviceModel) -> None:
        self.unit = unit
        self.model = model
        self.values: dict[str, Value] = {
            field.field: (False if field.type == "bool" else "" if field.type == "string" else 0.0)
            for field in model.registers
        }
        self.reply_delay = 0.0
        self.offline = False
        self.lost_replies = 0  # the next N requests get no answer, as when noise corrupts a frame
        # Set by a gateway that models RS-485 timing: requests then hold the bus for their wire time.
        self.bus: Rs485Bus | None = None
        # Called before a read is answered, to bring the values up to now (see physics.py).
        self.refresh: Callable[[SimulatedModbusDevice], None] | None = None
        self.requests = 0

    def fields_of(self, table: str) -> list[RegisterField]:
        return [field for field in self.model.registers if field.table == table]

    def _block(self, table: str) -> list[SimData]:
        fields = self.fields_of(table)
        end = max((field.address + field.count for field in fields), default=1)
        if table in {"coil", "discrete"}:
            return [SimData(0, count=end, values=False, datatype=DataType.BITS)]
        return [SimData(0, count=end, values=0, datatype=DataType.REGISTERS)]

    def sim_device(self) -> SimDevice:
        return SimDevice(
            id=self.unit,
            simdata=(self._block("coil"), self._block("discrete"), self._block("holding"), self._block("input")),
            action=self._on_request,
        )

    async def _on_request(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        self.requests += 1
        if self.lost_replies > 0:
            self.lost_replies -= 1
            await asyncio.sleep(OFFLINE_DELAY)
        if self.offline:
            await asyncio.sleep(OFFLINE_DELAY)
        elif self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        table = _TABLE_OF_FC.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        # pymodbus calls a write's hook twice: with the values, then without them to build its answer. One
        # exchange is on the wire, so the bus is held once.
        if self.bus is not None and not (function_code in _WRITES and set_values is None):
            # pymodbus hands bit requests over as 16-bit words; count them as 16 bits each.
            await self.bus.hold(table, count * 16 if table in {"coil", "discrete"} else count)
        if set_values is not None:
            self._written(table, address, list(set_values))
            return None
        if self.refresh is not None:
            self.refresh(self)
        if table in {"holding", "input"}:
            for field in self.fields_of(table):
                value = self.values[field.field]
                words = encode_field(field, value if not isinstance(value, bool) else int(value))
                registers[field.address - start_address : field.address - start_address + field.count] = words
        else:
            # Bits are packed 16 to a register in the simulator's store.
            for field in self.fields_of(table):
                index, bit = divmod(field.address - start_address, 16)
                if self.values[field.field]:
                    registers[index] |= 1 << bit
                else:
                    registers[index] &= ~(1 << bit)
        return None

    def _written(self, table: str, address: int, values: list[Any]) -> None:
        for offset, value in enumerate(values):
            for field in self.fields_of(table):
                if field.address == address + offset and field.count == 1:
                    self.values[field.field] = bool(value) if table == "coil" else value


class SimulatedGateway:
    """Devices behind one simulated connection: a Modbus TCP device or an RTU-over-TCP gateway on
    127.0.0.1, or (with ``serial_port``) an RS-485 bus on a serial port such as one end of a pty pair."""

    def __init__(
        self,
        devices: list[SimulatedModbusDevice],
        rtu: bool,
        port: int = 0,
        serial_port: str | None = None,
        baudrate: int = 9600,
        bus: Rs485Bus | None = None,
    ) -> None:
        self.devices = {device.unit: device for device in devices}
        for device in devices:
            device.bus = bus
        self.rtu = rtu or serial_port is not None
        self._requested_port = port
        self.port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    async def start(self) -> None:
        devices = [device.sim_device() for device in self.devices.values()]
        if self.serial_port is not None:
            self._server = ModbusSerialServer(
                devices, framer=FramerType.RTU, port=self.serial_port, baudrate=self.baudrate
            )
            await self._server.serve_forever(background=True)
            return
        self._server = ModbusTcpServer(
            devices,
            framer=FramerType.RTU if self.rtu else FramerType.SOCKET,
            address=("127.0.0.1", self._requested_port),
        )
        await self._server.serve_forever(background=True)
        listener: Any = self._server.transport  # an asyncio.Server once listening
        self.port = int(listener.sockets[0].getsockname()[1])
        self._requested_port = self.port  # a restart comes back on the same port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]
            self._server = None
