"""One Modbus link per gateway or serial bus: every request to the devices behind it goes through here.

An RS-485 bus answers one request at a time, so a link serializes requests (a Modbus TCP device may
allow a few in flight: then the link keeps that many connections). It honours the gateway's
inter-request delay, bounds every request by the gateway's timeout, and reconnects with exponential
backoff and jitter. RTU framing carries no transaction id: after a timeout the link drops the
connection, so a reply that arrives late can never be taken for the answer to the next request
(``tests/test_modbus_link.py`` shows the wrong value that is read otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from collectors.dial_in.line import DialInLine
from collectors.dial_in.modbus_client import DialInModbusClient
from collectors.link_errors import DeviceRefused, DeviceTimeout, LinkDown
from houqin.backoff import Backoff
from houqin.inventory.model import Gateway

log = logging.getLogger(__name__)

ModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient | DialInModbusClient
T = TypeVar("T")


@dataclass
class _Connection:
    client: ModbusClient
    last_request_end: float = 0.0
    down_until: float = 0.0
    failures: int = 0


class ModbusLink:
    """Reads and writes for the devices behind one gateway."""

    def __init__(
        self, gateway: Gateway, backoff_base: float = 0.5, backoff_max: float = 60.0, line: DialInLine | None = None
    ) -> None:
        if (gateway.type == "dial_in") != (line is not None):
            raise ValueError(f"gateway {gateway.id}: a dial_in gateway is reached through its line, only it")
        self.gateway = gateway
        self.line = line
        # Jittered: the links of a campus that lost its network together do not all reconnect together.
        self.backoff = Backoff(backoff_base, backoff_max, jitter=0.5)
        self._idle: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(gateway.max_in_flight):
            self._idle.put_nowait(_Connection(self._new_client()))
        self.requests = 0
        self.timeouts = 0
        self.reconnects = 0

    @property
    def name(self) -> str:
        return self.gateway.id

    def _new_client(self) -> ModbusClient:
        gateway = self.gateway
        if self.line is not None:
            return DialInModbusClient(self.line, gateway.timeout)
        # reconnect_delay=0: pymodbus must not reconnect on its own; the link decides when (backoff).
        if gateway.type == "rtu_serial":
            return AsyncModbusSerialClient(
                gateway.device or "",
                framer=FramerType.RTU,
                baudrate=gateway.baudrate,
                bytesize=gateway.bytesize,
                parity=gateway.parity,
                stopbits=gateway.stopbits,
                timeout=gateway.timeout,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            gateway.host or "",
            port=gateway.port,
            framer=FramerType.RTU if gateway.type == "rtu_over_tcp" else FramerType.SOCKET,
            timeout=gateway.timeout,
            retries=0,
            reconnect_delay=0,
        )

    async def read(self, unit: int, table: str, address: int, count: int) -> list[int] | list[bool]:
        """``count`` registers (or bits) of ``table`` from ``address`` on device ``unit``."""
        return await self._run(lambda client: self._read(client, unit, table, address, count), unit)

    async def write(self, unit: int, table: str, address: int, values: Sequence[int] | Sequence[bool]) -> None:
        """Write coils or holding registers from ``address`` on device ``unit``."""
        await self._run(lambda client: self._write(client, unit, table, address, values), unit)

    async def write_and_read_back(
        self, unit: int, table: str, address: int, values: Sequence[int] | Sequence[bool]
    ) -> list[int] | list[bool]:
        """Write, then read the same registers back, in one turn on the link: a command and its
        confirmation go out back to back, then the poll that waited goes next (two turns made a bus's
        commands wait behind its polls twice)."""

        async def request(client: ModbusClient) -> list[int] | list[bool]:
            await self._write(client, unit, table, address, values)
            return await self._read(client, unit, table, address, len(values))

        return await self._run(request, unit)

    async def _read(
        self, client: ModbusClient, unit: int, table: str, address: int, count: int
    ) -> list[int] | list[bool]:
        if table == "holding":
            response = await client.read_holding_registers(address, count=count, device_id=unit)
        elif table == "input":
            response = await client.read_input_registers(address, count=count, device_id=unit)
        elif table == "coil":
            response = await client.read_coils(address, count=count, device_id=unit)
        elif table == "discrete":
            response = await client.read_discrete_inputs(address, count=count, device_id=unit)
        else:
            raise ValueError(f"unknown register table {table!r}")
        if response.isError():
            self._refused(response, unit, f"read {table} {address}+{count}")
        if table in {"coil", "discrete"}:
            return list(response.bits[:count])
        if len(response.registers) != count:
            raise DeviceTimeout(f"unit {unit}: asked {count} registers, got {len(response.registers)}")
        return list(response.registers)

    async def _write(
        self, client: ModbusClient, unit: int, table: str, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None:
        if table == "coil":
            bits = [bool(value) for value in values]
            if len(bits) == 1:
                response = await client.write_coil(address, bits[0], device_id=unit)
            else:
                response = await client.write_coils(address, bits, device_id=unit)
        elif table == "holding":
            words = [int(value) for value in values]
            if len(words) == 1:
                response = await client.write_register(address, words[0], device_id=unit)
            else:
                response = await client.write_registers(address, words, device_id=unit)
        else:
            raise ValueError(f"table {table!r} cannot be written")
        if response.isError():
            self._refused(response, unit, f"write {table} {address}")

    def _refused(self, response: object, unit: int, what: str) -> NoReturn:
        code = int(getattr(response, "exception_code", 0))
        raise DeviceRefused(f"unit {unit} refused {what}: Modbus exception {code}", code)

    async def _run(self, request: Callable[[ModbusClient], Awaitable[T]], unit: int) -> T:
        connection = await self._idle.get()
        try:
            if not connection.client.connected:
                await self._connect(connection)
            gap = self.gateway.inter_request_delay - (time.monotonic() - connection.last_request_end)
            if gap > 0:
                await asyncio.sleep(gap)
            self.requests += 1
            try:
                # The client bounds the wait for the answer by the gateway's timeout (sending never
                # blocks: it is buffered), so no timer of our own is needed per request.
                return await request(connection.client)
            except (TimeoutError, ModbusIOException) as exc:
                self.timeouts += 1
                # A late reply must never answer the next request. RTU framing cannot tell them apart, and
                # pymodbus fails a Modbus TCP request whose transaction id does not match instead of
                # waiting on: either way a fresh connection is the only clean state.
                connection.client.close()
                raise DeviceTimeout(f"unit {unit} on {self.gateway.id}: no answer within "
                                    f"{self.gateway.timeout:g} s") from exc  # fmt: skip
            except (ConnectionException, OSError, RuntimeError) as exc:
                # RuntimeError: the client kept a transport that had closed under it (uvloop refuses to write
                # to it: "the handler is closed"); without closing it here every request would fail alike.
                connection.client.close()
                raise LinkDown(f"{self.gateway.id}: connection lost: {exc}") from None
            except ModbusException as exc:
                connection.client.close()
                raise DeviceTimeout(f"unit {unit} on {self.gateway.id}: {exc}") from None
            finally:
                connection.last_request_end = time.monotonic()
        finally:
            self._idle.put_nowait(connection)
            # Turns are taken in order: a caller that asks again at once (a command's write, then its
            # read-back, then the next command) would otherwise take the connection back before the poll
            # that was waiting for it runs, and a curfew's commands would hold a bus for seconds.
            await asyncio.sleep(0)

    async def _connect(self, connection: _Connection) -> None:
        if self.line is not None:  # nothing to dial: the DTU dials in, and a poll while it is away fails at once
            raise LinkDown(self.line.describe_absence())
        now = time.monotonic()
        if now < connection.down_until:
            raise LinkDown(f"{self.gateway.id}: unreachable, next attempt in {connection.down_until - now:.1f} s")
        self.reconnects += 1
        ok = False
        try:
            ok = await asyncio.wait_for(connection.client.connect(), self.gateway.timeout + 1)
        except (TimeoutError, OSError, ModbusException):
            ok = False
        if ok and connection.client.connected:
            if connection.failures:
                log.info("%s: connected again after %d failed attempts", self.gateway.id, connection.failures)
            connection.failures = 0
            return
        connection.failures += 1
        delay = self.backoff.delay(connection.failures)
        connection.down_until = time.monotonic() + delay
        level = logging.ERROR if connection.failures == 1 else logging.DEBUG
        log.log(level, "%s: cannot connect (attempt %d), retrying in %.1f s", self.gateway.id, connection.failures,
                delay)  # fmt: skip
        raise LinkDown(f"{self.gateway.id}: cannot connect")

    async def close(self) -> None:
        connections = [self._idle.get_nowait() for _ in range(self._idle.qsize())]
        for connection in connections:
            connection.client.close()
            self._idle.put_nowait(connection)
