"""The simulated campus behaves like a campus: energy integrates power, relays cut rooms, phases add up,
lighting draws current when on, faults change what is measured."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from collectors.link_errors import DeviceTimeout
from collectors.modbus_link import ModbusLink
from collectors.modbus_poller import ModbusBusPoller
from collectors.registers import decode_field
from collectors.simulators.campus import SimulatedCampus
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from collectors.simulators.physics import MeterPhysics
from collectors.simulators.rs485 import Rs485Bus, blocks_of
from houqin.inventory import Inventory, load_inventory
from houqin.inventory.model import Gateway
from houqin.readings import Reading
from tests.servers import need

TZ = ZoneInfo("Asia/Shanghai")


def test_energy_integrates_power_and_a_cut_relay_freezes_it() -> None:
    powered = [True]
    meter = MeterPhysics(lambda now: 1000.0, noise=0.0, powered=lambda: powered[0])
    meter.sample(now=0.0)
    sample = meter.sample(now=3600.0)
    assert sample["energy"] == pytest.approx(1.0) and sample["power"] == pytest.approx(1000.0)
    assert sample["current"] == pytest.approx(1000.0 / (sample["voltage"] * 0.95))
    powered[0] = False
    off = meter.sample(now=7200.0)
    assert off["power"] == 0.0 and off["current"] == 0.0 and off["energy"] == pytest.approx(1.0)


def test_three_phases_add_up_and_faults_show() -> None:
    meter = MeterPhysics(lambda now: 9000.0, phases=3)
    sample = meter.sample(now=0.0)
    assert sample["power_l1"] + sample["power_l2"] + sample["power_l3"] == pytest.approx(sample["power"])
    meter.faults.add("voltage_sag")
    assert meter.sample(now=1.0)["voltage"] < 198
    meter.faults.clear()
    meter.faults.add("illegal_appliance")
    assert meter.sample(now=2.0)["power"] > 9000 * 0.95 + 1700
    meter.faults.add("stuck_value")
    assert meter.sample(now=3.0) == meter.sample(now=4.0)


async def read(link: ModbusLink, unit: int, table: str, field_name: str, campus_model) -> object:  # type: ignore[no-untyped-def]
    field = next(f for f in campus_model.registers if f.field == field_name)
    return decode_field(field, await link.read(unit, table, field.address, field.count))


async def test_cutting_a_room_relay_over_modbus_stops_its_meter(demo_inventory: Inventory) -> None:
    campus = SimulatedCampus(demo_inventory, TZ)
    await campus.start()
    link = ModbusLink(campus.gateway_for_link(demo_inventory.gateways["dorm1-f1"]))
    try:
        meter_model = demo_inventory.models["eastron-sdm120"]
        relay_model = demo_inventory.models["generic-relay"]
        assert await read(link, 11, "coil", "relay_closed", relay_model) is True
        assert await read(link, 1, "input", "power", meter_model) > 0  # type: ignore[operator]
        await link.write(11, "coil", 0, [False])  # D1-101's relay: unit 11 on the floor bus
        assert await read(link, 1, "input", "power", meter_model) == 0.0
        assert await read(link, 2, "input", "power", meter_model) > 0  # type: ignore[operator]  # the neighbour
        campus.inject("d1-102-meter", "offline")
        with pytest.raises(DeviceTimeout):
            await link.read(2, "input", 0, 2)
        with pytest.raises(ValueError, match="unknown fault"):
            campus.inject("d1-102-meter", "on_fire")
    finally:
        await link.close()
        await campus.stop()


async def test_lighting_circuits_draw_current_when_on(demo_inventory: Inventory) -> None:
    campus = SimulatedCampus(demo_inventory, TZ)
    await campus.start()
    link = ModbusLink(campus.gateway_for_link(demo_inventory.gateways["teaching-a-lighting"]))
    model = demo_inventory.models["modbus-lighting-4ch"]
    try:
        assert await read(link, 1, "input", "circuit2_current", model) == 0.0
        await link.write(1, "coil", 1, [True])
        assert await read(link, 1, "input", "circuit2_current", model) == pytest.approx(1.2)
        campus.inject("teaching-a-lights-1", "lamp_failure")
        assert await read(link, 1, "coil", "circuit2_on", model) is True
        assert await read(link, 1, "input", "circuit2_current", model) == 0.0
    finally:
        await link.close()
        await campus.stop()


def test_rs485_wire_time_at_9600_baud() -> None:
    bus = Rs485Bus(baudrate=9600, turnaround=0.0)
    assert bus.char_time == pytest.approx(11 / 9600)
    # 8-byte request + (5 + 2 × 2)-byte answer, and two 3.5-character silences
    assert bus.read_time("input", 2) == pytest.approx((8 + 9 + 7) * 11 / 9600)


async def test_a_timed_bus_allows_no_more_than_its_wire_time(demo_inventory: Inventory) -> None:
    model = demo_inventory.models["eastron-sdm120"]
    bus = Rs485Bus(baudrate=9600)
    meters = [SimulatedModbusDevice(unit, model) for unit in (1, 2)]
    sim = SimulatedGateway(meters, rtu=True, bus=bus)
    await sim.start()
    gateway = Gateway(id="gw", type="rtu_over_tcp", host="127.0.0.1", port=sim.port, timeout=2.0)
    link = ModbusLink(gateway)
    blocks = blocks_of(model.registers, model.max_read_gap)
    try:
        started = time.perf_counter()

        async def poll(unit: int) -> None:
            for _ in blocks:
                await link.read(unit, "input", 0, 2)

        # Both meters at once: the bus still carries one frame at a time.
        await asyncio.gather(*(poll(unit) for unit in (1, 2) for _ in range(3)))
        elapsed = time.perf_counter() - started
        floor = 6 * bus.poll_time([("input", 2)] * len(blocks))
        assert elapsed >= floor  # one frame at a time: never faster than the wire
    finally:
        await link.close()
        await sim.stop()


async def test_a_serial_bus_is_simulated_over_a_pseudo_terminal_pair(tmp_path: Path) -> None:
    need("socat", "socat")
    (tmp_path / "devices.yaml").write_text(
        "site: {name: Serial test, timezone: Asia/Shanghai}\n"
        "gateways:\n"
        "  - {id: pump-room, type: rtu_serial, device: /dev/ttyUSB0, baudrate: 19200, timeout: 0.5}\n"
        "devices:\n"
        "  - {id: pump-meter, model: eastron-sdm120, gateway: pump-room, unit: 5, building: B}\n",
        encoding="utf-8",
    )
    inventory = load_inventory(tmp_path / "devices.yaml")
    campus = SimulatedCampus(inventory, TZ)
    await campus.start()
    gateway = campus.gateway_for_link(inventory.gateways["pump-room"])
    readings: list[Reading] = []

    async def publish(reading: Reading) -> None:
        readings.append(reading)

    try:
        assert gateway.device != "/dev/ttyUSB0" and gateway.baudrate == 19200
        poller = ModbusBusPoller(ModbusLink(gateway), inventory.devices_on("pump-room"), inventory, publish)
        reading = await poller.poll_once(inventory.devices["pump-meter"])
        assert reading is not None and 200 < float(reading.fields["voltage"]) < 250
        await poller.link.close()
    finally:
        await campus.stop()
