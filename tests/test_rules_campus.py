"""End to end on a simulated campus: faults injected into the simulators become repair orders of the
right category for the right team, through real Modbus and MQTT links, the pipeline, the rules engine
and the SQL store; a cleared fault leaves a note on its order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from assembly import Houqin, ProcessRole, assemble
from assembly.graph import Tuning
from collectors.modbus_link import ModbusLink
from collectors.mqtt_link import MqttLink
from collectors.simulators.campus import SimulatedCampus
from collectors.simulators.mqtt_devices import SimulatedMqttDevices
from houqin.accounts import NewAccount, add_account
from houqin.commands import CommandQueue, CommandRequest
from houqin.inventory import Inventory, load_inventory
from houqin.settings import Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import CommandSource, RepairEvent, RepairOrder, Role, User
from rules.loader import load_rules
from tests.api_client import PASSWORD
from tests.servers import free_port

INVENTORY = """
site: {name: Test campus, timezone: Asia/Shanghai}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
teams:
  - {id: electrical, name: Electrical, categories: [electrical, meter, lighting]}
  - {id: plumbing, name: Plumbing, categories: [plumbing, water_meter]}
gateways:
  - {id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.3}
  - {id: water-dtu, type: dial_in, host: 127.0.0.1, port: DTU_PORT, registration: "DTU-WATER-9", timeout: 0.5}
devices:
  - {id: r101-meter, model: eastron-sdm120, gateway: floor1, unit: 1, building: dorm-9, floor: 1, room: R101,
     poll_interval: 0.5}
  - {id: r101-relay, model: generic-relay, gateway: floor1, unit: 11, building: dorm-9, floor: 1, room: R101,
     poll_interval: 0.5}
  - {id: corridor-lights, model: modbus-lighting-4ch, gateway: floor1, unit: 21, building: dorm-9, floor: 1,
     poll_interval: 0.5}
  - {id: dorm9-water, model: mqtt-water-meter, topic: campus/dorm-9/water, building: dorm-9, poll_interval: 0.5}
  - {id: hall-lights, model: mqtt-lighting, topic: campus/dorm-9/hall/state, building: dorm-9, poll_interval: 5}
  - {id: dorm9-cold, model: quick-cold-water, gateway: water-dtu, address: "78330000090001", building: dorm-9,
     poll_interval: 0.5}
models:
  # The shipped CJ/T 188 cold-water profile, its flow worked out over 5 s instead of 15 minutes.
  - name: quick-cold-water
    kind: water
    protocol: cjt188
    cjt188: {meter_type: cold_water, flow_window: 5}
    commands: {valve: {state_field: valve_closed, actions: {open: open, close: close}}}
rooms:
  - {id: R101, building: dorm-9, floor: 1, meter: r101-meter, relay: r101-relay, tariff: flat}
"""

RULES = """
rules:
  - id: leak
    select: {kinds: [water]}
    condition: {kind: night_flow, field: flow, above: 0.5, for: 2, window: {start: "01:00", end: "05:00"}, clear: 0.5}
    repair: {category: plumbing, priority: urgent}
    title: "{building}: water flowing at night ({flow:.1f} L/min)"
  - id: lamp
    select: {models: [modbus-lighting-4ch]}
    condition:
      kind: mismatch
      when: {field: circuit1_on, equals: true}
      expect: {field: circuit1_current, above: 0.1}
      for: 2
    repair: {category: lighting}
    title: "{building}: circuit 1 of {device} draws no current"
  - id: sag
    select: {models: [eastron-sdm120]}
    condition: {kind: threshold, field: voltage, below: 198, for: 2, clear: 205}
    repair: {category: electrical, priority: high}
    title: "{building} {room}: low voltage ({voltage:.0f} V)"
  - id: appliance
    select: {models: [eastron-sdm120]}
    condition: {kind: power_step, field: power, rise: 1500, for: 2}
    repair: {category: electrical, priority: urgent}
    title: "{building} {room}: high-power appliance ({power:.0f} W)"
    actions: [repair_order, cut_relay]
    restore: manual
  - id: silent
    select: {devices: [r101-meter]}
    condition: {kind: offline, after: 3}
    repair: {category: meter}
    title: "{building} {room}: {device} does not answer"
"""


def night_zone() -> ZoneInfo:
    """A fixed-offset zone where it is now about 3 in the morning, so the night-flow window is open."""
    offset = (3 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return ZoneInfo(f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT")


@dataclass
class Campus:
    inventory: Inventory
    database: Database
    simulator: SimulatedCampus
    commands: CommandQueue
    houqin: Houqin

    async def every_device_read(self) -> None:
        """The rules engine has seen a reading of every device it watches: their baselines exist."""
        engine = self.houqin.rules_engine
        assert engine is not None
        async with asyncio.timeout(10):
            while not all(watch.fields for watches in engine._watches.values() for watch in watches):
                await asyncio.sleep(0.05)

    async def mqtt_ready(self) -> None:
        """houqin's MQTT link is connected and the simulated devices listen to their command topics."""
        link = next(component for component in self.houqin.components if isinstance(component, MqttLink))
        devices = next(c for c in self.houqin.components if isinstance(c, SimulatedMqttDevices))
        async with asyncio.timeout(10):
            await link.connected.wait()
            await devices.subscribed.wait()

    async def order(self, rule: str, seconds: float) -> RepairOrder:
        """The one order the rule has opened, once it has."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            async with self.database.session() as session:
                found = (await session.execute(select(RepairOrder).where(RepairOrder.rule_id == rule))).scalars()
                orders = list(found)
            if orders:
                assert len(orders) == 1, [o.title for o in orders]
                return orders[0]
            await asyncio.sleep(0.1)
        raise AssertionError(f"no order from rule {rule} within {seconds:.0f} s")

    async def assignee(self, order: RepairOrder) -> str:
        async with self.database.session() as session:
            user = await session.get(User, order.assignee_id)
            return user.username if user else ""

    async def notes(self, order: RepairOrder) -> list[str]:
        async with self.database.session() as session:
            query = select(RepairEvent.note).where(RepairEvent.order_id == order.id, RepairEvent.kind == "note")
            return list((await session.execute(query)).scalars())


@pytest.fixture
async def campus(tmp_path: Path) -> AsyncIterator[Campus]:
    zone = night_zone()
    # The campus's clock is its inventory's.
    inventory_text = INVENTORY.replace("timezone: Asia/Shanghai", f"timezone: {zone.key}")
    inventory_text = inventory_text.replace("DTU_PORT", str(free_port()))
    (tmp_path / "devices.yaml").write_text(inventory_text, encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    settings = Settings(data_dir=tmp_path)
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.sqlite3'}")
    await upgrade_database(database)
    async with database.session() as session:
        await add_account(session, NewAccount("zhang", Role.WORKER, PASSWORD, team="electrical"), inventory)
        await add_account(session, NewAccount("liu", Role.WORKER, PASSWORD, team="plumbing"), inventory)
        await session.commit()
    rules = load_rules([tmp_path / "rules.yaml"], inventory)
    try:
        async with assemble(settings, inventory, roles={ProcessRole.COLLECT, ProcessRole.RULES}, rules=rules,
                            simulate=True, database=database, tuning=Tuning(rules_tick_s=0.2)) as houqin:  # fmt: skip
            assert houqin.simulator is not None
            stop = asyncio.Event()
            running = asyncio.create_task(houqin.run(stop))
            try:
                yield Campus(inventory, database, houqin.simulator, houqin.commands, houqin)
            finally:
                stop.set()
                await running
    finally:
        await database.close()


async def test_injected_faults_become_orders_for_the_right_teams(campus: Campus) -> None:
    sim = campus.simulator
    await campus.every_device_read()

    sim.inject("dorm9-water", "leak")
    started = time.monotonic()
    leak = await campus.order("leak", seconds=2 + 0.5 + 2)  # the rule's duration + an interval + 2 s
    assert (
        leak.category == "plumbing"
        and leak.building == "dorm-9"
        and "water flowing at night" in leak.title
        and leak.priority == "urgent"
    )
    assert await campus.assignee(leak) == "liu" and time.monotonic() - started < 4.5
    sim.inject("dorm9-water", "leak", active=False)
    deadline = time.monotonic() + 5
    while not any("fault cleared" in note for note in await campus.notes(leak)):
        assert time.monotonic() < deadline, "the cleared leak left no note"
        await asyncio.sleep(0.1)

    lights = campus.inventory.devices["corridor-lights"]
    link = ModbusLink(sim.gateway_for_link(campus.inventory.gateways["floor1"]))
    await link.write(lights.unit or 0, "coil", 0, [True])  # circuit 1 on
    await link.close()
    sim.inject("corridor-lights", "lamp_failure")
    lamp = await campus.order("lamp", seconds=5)
    assert (
        lamp.category == "lighting"
        and "circuit 1 of corridor-lights" in lamp.title
        and await campus.assignee(lamp) == "zhang"
    )

    sim.inject("r101-meter", "voltage_sag")
    sag = await campus.order("sag", seconds=5)
    assert (
        sag.category == "electrical"
        and sag.title.startswith("dorm-9 R101: low voltage")
        and sag.room == "R101"
        and sag.priority == "high"
    )
    sim.inject("r101-meter", "voltage_sag", active=False)

    sim.inject("r101-meter", "illegal_appliance")  # a 1.8 kW kettle
    kettle = await campus.order("appliance", seconds=5)
    assert kettle.category == "electrical" and kettle.priority == "urgent" and "high-power appliance" in kettle.title
    # The rule also cut the room's power through the command queue, confirmed by reading the relay back.
    relay, meter = sim.devices["r101-relay"], sim.devices["r101-meter"]
    deadline = time.monotonic() + 5
    while relay.values["relay_closed"] or meter.values["power"] != 0:
        assert time.monotonic() < deadline, "the room's relay was not cut"
        await asyncio.sleep(0.1)
    [cut] = await campus.commands.recent("r101-relay")
    assert (cut.command, cut.action, cut.source) == ("relay", "off", "rule")
    deadline = time.monotonic() + 3
    while (await campus.commands.recent("r101-relay"))[0].state != "confirmed":
        assert time.monotonic() < deadline, "the cut was not confirmed"
        await asyncio.sleep(0.1)
    sim.inject("r101-meter", "illegal_appliance", active=False)
    await asyncio.sleep(1.0)
    assert not relay.values["relay_closed"]  # restore: manual: the power stays off until staff say so

    sim.inject("r101-meter", "offline")
    silent = await campus.order("silent", seconds=3 + 2 + 2)
    assert (
        silent.category == "meter"
        and silent.device == "r101-meter"
        and silent.title == "dorm-9 R101: r101-meter does not answer"
    )


async def test_a_command_to_an_mqtt_device_is_confirmed_by_its_state(campus: Campus) -> None:
    await campus.mqtt_ready()
    request = CommandRequest("hall-lights", "light", "on", CommandSource.USER, requested_by="li")
    row = await campus.commands.enqueue(request, datetime.now(UTC))
    deadline = time.monotonic() + 8
    while (state := (await campus.commands.recent("hall-lights"))[0].state) != "confirmed":
        assert time.monotonic() < deadline, f"the light command is {state}"
        await asyncio.sleep(0.1)
    assert row.state == "queued"  # as it was handed back; the row now says confirmed


async def test_a_burst_pipe_on_a_cjt188_meter_behind_a_dtu_opens_a_plumbing_order(campus: Campus) -> None:
    """The CJ/T 188 meter reports its totalizer only (in 0.01 m³ steps); houqin works out the flow from it,
    and the night-flow rule opens the order as for any water meter."""
    meter = campus.simulator.devices["dorm9-cold"]

    def burst(target: Any) -> None:
        target.values["flow"] = 120.0  # L/min: a burst pipe at three in the morning

    meter.refresh = burst
    leak = await campus.order("leak", seconds=20)
    assert leak.device == "dorm9-cold" and leak.category == "plumbing" and leak.priority == "urgent"
    assert await campus.assignee(leak) == "liu"


async def test_a_valve_command_is_confirmed_by_the_status_read_back(campus: Campus) -> None:
    meter = campus.simulator.devices["dorm9-cold"]
    request = CommandRequest("dorm9-cold", "valve", "close", CommandSource.USER, requested_by="liu")
    await campus.commands.enqueue(request, datetime.now(UTC))
    deadline = time.monotonic() + 10
    while (state := (await campus.commands.recent("dorm9-cold"))[0].state) != "confirmed":
        assert time.monotonic() < deadline, f"the valve command is {state}"
        await asyncio.sleep(0.1)
    assert meter.values["valve_closed"] is True and meter.valve_commands == ["close"]
    total = meter.values["total"]
    await asyncio.sleep(1)
    assert campus.simulator.device_state("dorm9-cold")["total"] == total  # a closed valve: nothing flows
