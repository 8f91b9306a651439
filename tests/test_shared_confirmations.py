"""Two houqin collectors sharing the devices' MQTT messages (``$share/`` on a real Mosquitto) and one SQL
store (SQLite and PostgreSQL): a command sent by one is confirmed by the device's state message wherever the
broker delivers it — once, never retried, never failed — and the sender is free for the next command."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from collectors.mqtt_command_dispatcher import MqttCommandDispatcher
from collectors.mqtt_link import MqttLink
from collectors.simulators.mqtt_devices import SimulatedMqttDevices
from houqin.commands import CommandQueue, CommandRequest
from houqin.inventory import load_inventory
from houqin.readings import Reading
from houqin.store import Database
from houqin.store.tables import CommandSource, CommandState, DeviceCommand
from tests.servers import Mosquitto
from tests.test_scheduler import SHANGHAI

LIGHTS = 6
INVENTORY = """
site: {name: Shared confirmations, timezone: Asia/Shanghai}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
devices:
""" + "".join(f"  - {{id: l{n}, model: mqtt-lighting, topic: PREFIX/l{n}/state, building: A}}\n" for n in range(LIGHTS))


async def test_a_state_that_reaches_the_other_process_confirms(
    database: Database, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = f"s{tmp_path.name[-8:]}"
    (tmp_path / "devices.yaml").write_text(INVENTORY.replace("PREFIX", prefix), encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    devices = SimulatedMqttDevices(inventory, url, SHANGHAI, {})
    heard = {"a": 0, "b": 0}  # state messages each process was given by the broker
    sides = []
    for name in ("a", "b"):
        queue = CommandQueue(database, inventory, max_attempts=3, backoff=0.05)
        dispatcher: list[MqttCommandDispatcher] = []

        async def publish(
            reading: Reading, name: str = name, dispatcher: list[MqttCommandDispatcher] = dispatcher
        ) -> None:
            heard[name] += 1
            await dispatcher[0].consume([reading])

        link = MqttLink(url, inventory, publish, client_id=f"{name}-{prefix}", shared_group=f"g{prefix}")
        dispatcher.append(MqttCommandDispatcher(queue, link, inventory, confirm_within=3.0, every=0.05))
        sides.append((queue, link, dispatcher[0]))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(part.run(stop)) for part in (devices, *(p for s in sides for p in s[1:]))]
    try:
        for _, link, _ in sides:
            await asyncio.wait_for(link.connected.wait(), 10)
        await asyncio.wait_for(devices.subscribed.wait(), 10)
        queue = sides[0][0]  # every command goes out from process a
        started = time.monotonic()
        for round_ in range(4):
            for n in range(LIGHTS):
                action = "on" if round_ % 2 == 0 else "off"
                await queue.enqueue(CommandRequest(f"l{n}", "light", action, CommandSource.USER), datetime.now(UTC))

            async def settled() -> bool:
                async with database.session() as session:
                    states = (await session.execute(select(DeviceCommand.state))).scalars().all()
                return all(state == CommandState.CONFIRMED for state in states)

            async with asyncio.timeout(10):
                while not await settled():
                    await asyncio.sleep(0.05)
        took = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    async with database.session() as session:
        rows = (await session.execute(select(DeviceCommand))).scalars().all()
    assert len(rows) == 4 * LIGHTS and {row.state for row in rows} == {CommandState.CONFIRMED}
    assert {row.attempts for row in rows} == {1}  # none timed out and went again
    assert heard["a"] > 0 and heard["b"] > 0  # the broker did give the other process its share
    assert took < 4 * 3.0  # no command waited out its 3 s deadline
    assert all(devices.state[f"l{n}"]["state"]["on"] is False for n in range(LIGHTS))  # the last round: off
