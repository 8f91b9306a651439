"""ModbusLink against simulated gateways on real sockets (pymodbus servers), TCP and RTU over TCP."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collectors.link_errors import DeviceRefused, DeviceTimeout, LinkDown
from collectors.modbus_link import ModbusLink
from collectors.read_plan import plan_reads
from collectors.registers import decode_block, decode_field
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from collectors.simulators.serial_cable import SerialCable
from houqin.inventory import Inventory
from houqin.inventory.model import Gateway
from tests.servers import free_port, need


def gateway_for(sim: SimulatedGateway, timeout: float = 0.3, **extra: object) -> Gateway:
    kind = "rtu_over_tcp" if sim.rtu else "modbus_tcp"
    return Gateway.model_validate({"id": "gw", "type": kind, "host": "127.0.0.1", "port": sim.port,
                                   "timeout": timeout, **extra})  # fmt: skip


@pytest.fixture(params=["tcp", "rtu_over_tcp"])
async def bus(request: pytest.FixtureRequest, demo_inventory: Inventory) -> AsyncIterator[SimulatedGateway]:
    meters = [SimulatedModbusDevice(unit, demo_inventory.models["eastron-sdm120"]) for unit in (1, 2)]
    lights = SimulatedModbusDevice(30, demo_inventory.models["modbus-lighting-4ch"])
    sim = SimulatedGateway([*meters, lights], rtu=request.param == "rtu_over_tcp")
    await sim.start()
    yield sim
    await sim.stop()


async def read_fields(link: ModbusLink, device: SimulatedModbusDevice) -> dict[str, object]:
    def garbage(what: str) -> None:
        raise AssertionError(f"unusable value from the simulator: {what}")

    values: dict[str, object] = {}
    for block in plan_reads(device.model.registers, max_gap=device.model.max_read_gap):
        data = await link.read(device.unit, block.table, block.address, block.count)
        values.update(decode_block(block, data, garbage))
    return values


async def test_reads_decode_what_the_device_holds(bus: SimulatedGateway) -> None:
    meter = bus.devices[1]
    meter.values.update(voltage=229.5, current=3.25, power=745.0, energy=1234.5, frequency=50.0)
    link = ModbusLink(gateway_for(bus))
    try:
        values = await read_fields(link, meter)
        assert values["voltage"] == pytest.approx(229.5)
        assert values["energy"] == pytest.approx(1234.5)
        assert link.requests == 3  # SDM120's ten fields in three block reads
    finally:
        await link.close()


async def test_coil_write_is_read_back(bus: SimulatedGateway) -> None:
    lights = bus.devices[30]
    lights.values.update(circuit3_current=1.5)
    link = ModbusLink(gateway_for(bus))
    try:
        await link.write(30, "coil", 2, [True])
        values = await read_fields(link, lights)
        assert values["circuit3_on"] is True and values["circuit1_on"] is False
        assert values["circuit3_current"] == pytest.approx(1.5)
        assert lights.values["circuit3_on"] is True
        await link.write(30, "coil", 2, [False])
        assert (await read_fields(link, lights))["circuit3_on"] is False
    finally:
        await link.close()


async def test_an_unmapped_address_is_refused_by_the_device(bus: SimulatedGateway) -> None:
    link = ModbusLink(gateway_for(bus))
    try:
        with pytest.raises(DeviceRefused) as refused:
            await link.read(1, "holding", 500, 2)
        assert refused.value.code == 2  # illegal data address
        assert len(await link.read(1, "input", 0, 2)) == 2  # the link is fine afterwards
    finally:
        await link.close()


async def test_a_late_reply_never_answers_the_next_request(bus: SimulatedGateway) -> None:
    meter = bus.devices[1]
    meter.values.update(voltage=111.0, current=5.0)
    voltage, current = meter.model.registers[0], meter.model.registers[1]
    assert (voltage.field, current.field) == ("voltage", "current")
    link = ModbusLink(gateway_for(bus, timeout=0.3))
    try:
        meter.reply_delay = 0.45
        started = asyncio.get_running_loop().time()
        with pytest.raises(DeviceTimeout):
            await link.read(1, "input", voltage.address, 2)  # its answer comes at 0.45 s, after we gave up
        assert asyncio.get_running_loop().time() - started < 0.45
        # The next request is still waiting for its own answer when the late voltage reply arrives. An RTU
        # reply names neither the address nor a transaction, so it would pass for the current reading.
        meter.reply_delay = 0.25
        words = await link.read(1, "input", current.address, 2)
        assert decode_field(current, words) == pytest.approx(5.0)
    finally:
        await link.close()


async def test_reconnects_with_backoff_after_the_gateway_returns(demo_inventory: Inventory) -> None:
    meter = SimulatedModbusDevice(1, demo_inventory.models["eastron-sdm120"])
    meter.values["voltage"] = 230.0
    sim = SimulatedGateway([meter], rtu=True, port=free_port())
    await sim.start()
    link = ModbusLink(gateway_for(sim), backoff_base=0.1, backoff_max=0.4)
    try:
        assert len(await link.read(1, "input", 0, 2)) == 2
        await sim.stop()
        with pytest.raises((LinkDown, DeviceTimeout)):
            await link.read(1, "input", 0, 2)
        with pytest.raises(LinkDown):
            for _ in range(3):
                await link.read(1, "input", 0, 2)
        await sim.start()
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            try:
                assert len(await link.read(1, "input", 0, 2)) == 2
                break
            except LinkDown:
                assert asyncio.get_running_loop().time() < deadline, "did not reconnect within 5 s"
                await asyncio.sleep(0.05)
    finally:
        await link.close()
        await sim.stop()


async def test_requests_on_one_bus_are_serialized(bus: SimulatedGateway) -> None:
    link = ModbusLink(gateway_for(bus, timeout=1.0))
    for device in bus.devices.values():
        device.reply_delay = 0.05
    try:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(link.read(unit, "input", 0, 2) for unit in (1, 2, 1, 2, 1, 2)))
        # six 50 ms answers one after another on one bus
        assert asyncio.get_running_loop().time() - started >= 6 * 0.05
        assert sum(device.requests for device in bus.devices.values()) == 6
    finally:
        await link.close()


async def test_rtu_over_a_serial_line(demo_inventory: Inventory) -> None:
    meter = SimulatedModbusDevice(7, demo_inventory.models["eastron-sdm120"])
    meter.values.update(voltage=231.25, energy=88.5)
    relay = SimulatedModbusDevice(17, demo_inventory.models["generic-relay"])
    need("socat", "socat")
    cable = SerialCable()
    await cable.start()
    sim = SimulatedGateway([meter, relay], rtu=True, serial_port=cable.device_end, baudrate=9600)
    await sim.start()
    gateway = Gateway.model_validate(
        {"id": "bus", "type": "rtu_serial", "device": cable.houqin_end, "baudrate": 9600, "timeout": 1.0}
    )
    link = ModbusLink(gateway)
    try:
        values = await read_fields(link, meter)
        assert values["voltage"] == pytest.approx(231.25) and values["energy"] == pytest.approx(88.5)
        await link.write(17, "coil", 0, [True])
        assert (await read_fields(link, relay))["relay_closed"] is True
        assert relay.values["relay_closed"] is True
    finally:
        await link.close()
        await sim.stop()
        await cable.stop()
    assert not Path(gateway.device or "").parent.exists()  # the cable's pseudo-terminal links are gone


async def test_an_independent_client_reads_the_simulated_meter(demo_inventory: Inventory) -> None:
    """mbpoll (libmodbus) reads the simulator's float32 voltage: the simulator speaks real Modbus."""
    meter = SimulatedModbusDevice(3, demo_inventory.models["eastron-sdm120"])
    meter.values["voltage"] = 228.75
    sim = SimulatedGateway([meter], rtu=False)
    await sim.start()
    try:
        # -0: addresses from 0 as in the register map; -B: high word first (ABCD); -1: poll once.
        process = await asyncio.create_subprocess_exec(
            need("mbpoll", "mbpoll"), "-m", "tcp", "-p", str(sim.port), "-a", "3", "-t", "3:float", "-B",
            "-0", "-r", "0", "-c", "1", "-1", "127.0.0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 20)
        text = output.decode()
        assert process.returncode == 0, text
        value = re.search(r"^\[0\]:\s+(\S+)", text, re.MULTILINE)
        assert value is not None, text
        assert float(value.group(1)) == pytest.approx(228.75)
    finally:
        await sim.stop()


SILENT_METER = """
import asyncio, logging, sys
from assembly.cli.common import setup_logging
from collectors.link_errors import DeviceTimeout
from collectors.modbus_link import ModbusLink
from houqin.inventory.model import Gateway

async def main(level: str) -> None:
    setup_logging(level)
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # takes every request, answers none
        writer.close()
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for kind in ("modbus_tcp", "rtu_over_tcp"):
        link = ModbusLink(Gateway.model_validate({"id": "gw", "type": kind, "host": "127.0.0.1", "port": port,
                                                  "timeout": 0.2}))
        for _ in range(3):
            try:
                await link.read(1, "input", 0, 2)
            except DeviceTimeout as exc:
                logging.getLogger("collectors.modbus_poller").warning("%s", exc)
        await link.close()
    await asyncio.sleep(0.2)  # the server sees the links go
    server.close()

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_pymodbus_speaks_only_under_debug(level: str) -> None:
    """A silent meter gives houqin's one line per timeout; pymodbus's own errors and frame dumps appear only
    when houqin is asked for DEBUG."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", SILENT_METER, level], capture_output=True, text=True, timeout=60,
                          check=True)  # fmt: skip
    lines = done.stderr.splitlines()
    ours = [line for line in lines if "collectors.modbus_poller" in line and "no answer within 0.2 s" in line]
    assert len(ours) == 6, done.stderr
    pymodbus = [line for line in lines if "pymodbus" in line or ">>>>>" in line or line.startswith(("send:", "recv:"))]
    if level == "INFO":
        assert len(lines) == 6 and not pymodbus, done.stderr
    else:
        assert pymodbus, done.stderr
