"""Modbus RTU over a DTU that dialled in: the requests ``ModbusLink`` makes, on a ``DialInLine`` session.

pymodbus's clients open their own connection; a dial-in DTU's connection is opened by the DTU, so this
client frames requests and replies with pymodbus's own PDUs and RTU framer and moves the bytes itself. It
answers what ``ModbusLink`` asks of a client (``connected``, ``connect``, ``close`` and the read and write
calls, returning pymodbus responses), so the link's timeouts, retries and health apply unchanged.

RTU replies carry no transaction id. A reply is taken only from the unit asked, for the function asked
(or its exception), with the length the request implies; after a timeout the session is released, so
bytes that trail in late are dropped by the line until the next request opens a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pymodbus.exceptions import ConnectionException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadDiscreteInputsRequest,
    WriteMultipleCoilsRequest,
    WriteSingleCoilRequest,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadInputRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from collectors.dial_in.line import DialInLine
from collectors.link_errors import LinkDown

READ_CHUNK = 256
EXCEPTION = 0x80


class DialInModbusClient:
    """One Modbus RTU master on a dial-in line (an RS-485 bus has one request in flight: one client per link)."""

    def __init__(self, line: DialInLine, timeout: float) -> None:
        self.line = line
        self.timeout = timeout
        self._framer = FramerRTU(DecodePDU(is_server=False))
        self._session: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @property
    def connected(self) -> bool:
        return self.line.connected

    async def connect(self) -> bool:
        return self.line.connected

    def close(self) -> None:
        if self._session is not None:
            self.line.release(self._session[0])
            self._session = None

    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> ModbusPDU:
        return await self._exchange(ReadHoldingRegistersRequest(address=address, count=count, dev_id=device_id))

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> ModbusPDU:
        return await self._exchange(ReadInputRegistersRequest(address=address, count=count, dev_id=device_id))

    async def read_coils(self, address: int, *, count: int, device_id: int) -> ModbusPDU:
        return await self._exchange(ReadCoilsRequest(address=address, count=count, dev_id=device_id))

    async def read_discrete_inputs(self, address: int, *, count: int, device_id: int) -> ModbusPDU:
        return await self._exchange(ReadDiscreteInputsRequest(address=address, count=count, dev_id=device_id))

    async def write_coil(self, address: int, value: bool, *, device_id: int) -> ModbusPDU:
        return await self._exchange(WriteSingleCoilRequest(address=address, bits=[value], dev_id=device_id))

    async def write_coils(self, address: int, values: Sequence[bool], *, device_id: int) -> ModbusPDU:
        return await self._exchange(WriteMultipleCoilsRequest(address=address, bits=list(values), dev_id=device_id))

    async def write_register(self, address: int, value: int, *, device_id: int) -> ModbusPDU:
        return await self._exchange(WriteSingleRegisterRequest(address=address, registers=[value], dev_id=device_id))

    async def write_registers(self, address: int, values: Sequence[int], *, device_id: int) -> ModbusPDU:
        request = WriteMultipleRegistersRequest(address=address, registers=list(values), dev_id=device_id)
        return await self._exchange(request)

    async def _exchange(self, request: ModbusPDU) -> ModbusPDU:
        if self._session is None:
            try:
                self._session = self.line.open()
            except LinkDown as exc:
                raise ConnectionException(str(exc)) from None
        reader, writer = self._session
        writer.write(self._framer.buildFrame(request))
        await writer.drain()
        received = b""
        async with asyncio.timeout(self.timeout):  # TimeoutError: the link counts it and releases the session
            while True:
                chunk = await reader.read(READ_CHUNK)
                if not chunk:
                    self._session = None
                    raise ConnectionException(f"{self.line.name}: the DTU's connection closed")
                received += chunk
                while received:
                    used, reply = self._framer.handleFrame(received, request.dev_id, 0)
                    if used == 0:
                        break  # a frame begun, not finished
                    received = received[used:]
                    if reply is not None and _answers(reply, request):
                        return reply


def _answers(reply: ModbusPDU, request: ModbusPDU) -> bool:
    if reply.dev_id != request.dev_id:
        return False
    if reply.function_code == request.function_code | EXCEPTION:
        return True
    if reply.function_code != request.function_code:
        return False
    if isinstance(request, ReadHoldingRegistersRequest):  # input registers too: a subclass
        return len(reply.registers) == request.count
    if isinstance(request, ReadCoilsRequest):  # discrete inputs too
        return len(reply.bits) >= request.count
    return reply.address == request.address
