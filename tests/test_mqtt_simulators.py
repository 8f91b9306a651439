"""Simulated MQTT devices on a real Mosquitto, read by houqin's MQTT link: state, command echo, faults."""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from collectors.mqtt_link import MqttLink
from collectors.simulators.campus import SimulatedCampus
from houqin.inventory import Inventory
from houqin.readings import Reading
from tests.servers import Mosquitto


async def test_simulated_mqtt_devices_answer_commands_and_show_faults(
    mosquitto: Mosquitto, demo_inventory: Inventory
) -> None:
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    campus = SimulatedCampus(demo_inventory, ZoneInfo("Asia/Shanghai"))
    devices = campus.mqtt_devices(url)
    readings: list[Reading] = []

    async def publish(reading: Reading) -> None:
        readings.append(reading)

    link = MqttLink(url, demo_inventory, publish, client_id="houqin-sim-test")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(link.run(stop)), asyncio.create_task(devices.run(stop))]
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        lights = demo_inventory.devices["library-lights-1"]
        water = demo_inventory.devices["teaching-a-water"]
        campus.inject(water.id, "leak")
        campus.inject("library-lights-2", "garbage_payload")
        await asyncio.wait_for(devices.subscribed.wait(), 10)
        await link.send(lights, "light", "on")

        async def seen(predicate) -> None:  # type: ignore[no-untyped-def]
            async with asyncio.timeout(15):
                while not any(predicate(r) for r in readings):
                    await asyncio.sleep(0.05)

        await seen(lambda r: r.device == lights.id and r.fields.get("on") is True and r.fields["current"] == 1.2)
        await seen(lambda r: r.device == water.id and r.fields["flow"] >= 6.0)
        async with asyncio.timeout(15):
            while link.garbage.count == 0:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
