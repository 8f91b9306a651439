"""Polling a simulated RS-485 bus: steady intervals, a dead device backed off, garbage counted."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator

import pytest

from collectors.modbus_link import ModbusLink
from collectors.modbus_poller import ModbusBusPoller
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from houqin.inventory import Inventory
from houqin.inventory.model import Device, Gateway
from houqin.readings import Reading

INTERVAL = 0.3
TIMEOUT = 0.15


@pytest.fixture
async def floor_bus(demo_inventory: Inventory) -> AsyncIterator[SimulatedGateway]:
    meters = [SimulatedModbusDevice(unit, demo_inventory.models["eastron-sdm120"]) for unit in (1, 2, 3)]
    for meter in meters:
        meter.values.update(voltage=220.0 + meter.unit, energy=100.0 * meter.unit)
    sim = SimulatedGateway(meters, rtu=True)
    await sim.start()
    yield sim
    await sim.stop()


def devices_on(sim: SimulatedGateway) -> tuple[Gateway, list[Device]]:
    gateway = Gateway(id="gw", type="rtu_over_tcp", host="127.0.0.1", port=sim.port, timeout=TIMEOUT)
    devices = [
        Device(
            id=f"m{unit}",
            model="eastron-sdm120",
            gateway="gw",
            unit=unit,
            building="b",
            floor=1,
            room=f"R{unit}",
            poll_interval=INTERVAL,
        )
        for unit in sim.devices
    ]
    return gateway, devices


def recorder(readings: list[Reading]):  # type: ignore[no-untyped-def]
    async def publish(reading: Reading) -> None:
        readings.append(reading)

    return publish


async def run_for(poller: ModbusBusPoller, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)  # a poller that does not stop is a failure, not a hung suite


async def test_a_dead_device_does_not_slow_its_bus_mates(
    floor_bus: SimulatedGateway, demo_inventory: Inventory
) -> None:
    floor_bus.devices[2].offline = True
    gateway, devices = devices_on(floor_bus)
    readings: list[Reading] = []
    publish = recorder(readings)

    poller = ModbusBusPoller(ModbusLink(gateway), devices, demo_inventory, publish)
    await run_for(poller, 3.0)
    for device_id in ("m1", "m3"):
        stamps = [r.ts.timestamp() for r in readings if r.device == device_id and r.tags["kind"] == "electricity"]
        assert len(stamps) >= 9, (device_id, len(stamps))  # 10 ticks in 3 s
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # Never late by more than the dead device's timeout, and no drift: once the dead device's first
        # tries are behind (at the start every device whose slot on the interval's grid had passed is due at
        # once, the dead one's three tries included), the polls keep to their grid.
        assert max(gaps) <= INTERVAL + TIMEOUT + 0.05, gaps
        assert abs((stamps[-1] - stamps[3]) - INTERVAL * (len(stamps) - 4)) < 0.1, stamps
    first = next(r for r in readings if r.device == "m1" and r.tags["kind"] == "electricity")
    assert first.fields["voltage"] == pytest.approx(221.0) and first.tags["room"] == "R1"
    # Its first failure got the gateway's 2 retries, the next two polls one attempt each, then the breaker
    # opened and only probes (after 2, then 4 intervals) reached it: far fewer than 10 polls × 3 tries.
    assert floor_bus.devices[2].requests <= 8
    dead_health = [r for r in readings if r.device == "m2" and r.tags["kind"] == "device_health"]
    assert dead_health and not any(r.fields["online"] for r in dead_health)
    assert poller.health["m2"].consecutive_failures >= 3 and poller.health["m1"].online


async def test_garbage_values_are_counted_and_the_rest_kept(
    floor_bus: SimulatedGateway, demo_inventory: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    floor_bus.devices[1].values["voltage"] = math.nan
    gateway, devices = devices_on(floor_bus)
    readings: list[Reading] = []
    publish = recorder(readings)

    poller = ModbusBusPoller(ModbusLink(gateway), devices, demo_inventory, publish)
    for _ in range(3):
        await poller.poll_once(devices[0])
    data = [r for r in readings if r.device == "m1" and r.tags["kind"] == "electricity"]
    assert len(data) == 3
    assert all("voltage" not in r.fields and r.fields["energy"] == pytest.approx(100.0) for r in data)
    assert caplog.text.count("m1 sent data houqin cannot use") == 1  # logged once per minute
    assert poller.garbage.count == 3  # counted always
    await poller.link.close()


async def test_a_device_that_returns_is_found_by_the_probe(
    floor_bus: SimulatedGateway, demo_inventory: Inventory
) -> None:
    floor_bus.devices[3].offline = True
    gateway, devices = devices_on(floor_bus)
    readings: list[Reading] = []
    publish = recorder(readings)

    poller = ModbusBusPoller(ModbusLink(gateway), devices[2:], demo_inventory, publish)
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    await asyncio.sleep(1.5)
    assert not poller.health["m3"].online
    floor_bus.devices[3].offline = False
    await asyncio.sleep(2.5)  # the probe comes within 2 × interval, then doubles
    stop.set()
    await task
    assert poller.health["m3"].online
    assert any(r.device == "m3" and r.tags["kind"] == "electricity" for r in readings)


async def test_an_overloaded_bus_says_so_with_figures(
    floor_bus: SimulatedGateway, demo_inventory: Inventory, caplog: pytest.LogCaptureFixture
) -> None:
    for meter in floor_bus.devices.values():
        meter.reply_delay = 0.03  # three block reads per meter: ~0.1 s a poll, three meters
    gateway, devices = devices_on(floor_bus)
    devices = [device.model_copy(update={"poll_interval": 0.1}) for device in devices]

    async def publish(reading: Reading) -> None:
        pass

    poller = ModbusBusPoller(ModbusLink(gateway), devices, demo_inventory, publish, capacity_window=1.0)
    await run_for(poller, 2.5)
    assert poller.behind
    warnings = [r.getMessage() for r in caplog.records if "cannot keep up" in r.getMessage()]
    assert len(warnings) == 1
    assert "30.0 polls/s needed" in warnings[0]


async def test_a_lost_frame_is_retried(floor_bus: SimulatedGateway, demo_inventory: Inventory) -> None:
    meter = floor_bus.devices[1]
    gateway, devices = devices_on(floor_bus)
    readings: list[Reading] = []
    publish = recorder(readings)

    poller = ModbusBusPoller(ModbusLink(gateway), devices[:1], demo_inventory, publish)
    assert await poller.poll_once(devices[0]) is not None
    meter.requests = 0
    meter.lost_replies = 1
    reading = await poller.poll_once(devices[0])
    assert reading is not None and reading.fields["voltage"] == pytest.approx(221.0)
    assert meter.requests == 3 + 1  # three block reads, one of them twice
    assert poller.health["m1"].online
    await poller.link.close()


async def test_health_is_reported_on_change_and_then_now_and_again(
    floor_bus: SimulatedGateway, demo_inventory: Inventory
) -> None:
    gateway, devices = devices_on(floor_bus)
    readings: list[Reading] = []
    poller = ModbusBusPoller(ModbusLink(gateway), devices[:1], demo_inventory, recorder(readings), health_every=60)
    for _ in range(4):
        await poller.poll_once(devices[0])
    floor_bus.devices[1].offline = True
    await poller.poll_once(devices[0])
    await poller.poll_once(devices[0])
    health = [(r.fields["online"], r.fields["consecutive_failures"]) for r in readings
              if r.tags["kind"] == "device_health"]  # fmt: skip
    # Good polls: on the change only. Failed polls: each one, so the device view counts them as the link does.
    assert health == [(True, 0), (False, 1), (False, 2)]
    assert sum(r.tags["kind"] == "electricity" for r in readings) == 4
    await poller.link.close()


async def test_buses_polled_from_different_moments_come_due_together(
    floor_bus: SimulatedGateway, demo_inventory: Inventory
) -> None:
    """Two pollers of like buses, the second started a third of an interval after the first (a gateway
    taken over from another process): their devices' polls fall on one grid, so the process wakes once for
    both buses instead of once for each."""
    gateway, devices = devices_on(floor_bus)
    first: list[Reading] = []
    second: list[Reading] = []
    early = asyncio.create_task(run_for(ModbusBusPoller(ModbusLink(gateway), devices, demo_inventory,
                                                        recorder(first)), 3.0))  # fmt: skip
    await asyncio.sleep(INTERVAL / 3)
    await run_for(ModbusBusPoller(ModbusLink(gateway), devices, demo_inventory, recorder(second)), 2.0)
    await early
    for device in devices:

        def phases(readings: list[Reading], device_id: str = device.id) -> list[float]:
            stamps = [r.ts.timestamp() for r in readings if r.device == device_id and r.tags["kind"] == "electricity"]
            return [stamp % INTERVAL for stamp in stamps[1:]]  # the first may come at once, off the grid

        a, b = phases(first), phases(second)
        assert len(a) >= 6 and len(b) >= 4, (len(a), len(b))
        # Phases on the interval's circle: polls of one device by the two pollers are within a few ms.
        apart = [min(abs(x - y), INTERVAL - abs(x - y)) for x in a[:3] for y in b[:3]]
        assert max(apart) < 0.05, apart
