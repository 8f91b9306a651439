"""The scheduler on a clock the test drives, sending real commands: MQTT lights and a PA controller
simulated on a real Mosquitto, a Modbus lighting controller on a pymodbus server; the SQL store is SQLite
and PostgreSQL. Restart mid-evening, overrides that expire, an emergency over a bell, a controller that
never answers, and the lease that keeps one scheduler active."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from collectors.command_dispatcher import ModbusCommandDispatcher
from collectors.modbus_link import ModbusLink
from collectors.mqtt_command_dispatcher import MqttCommandDispatcher
from collectors.mqtt_link import MqttLink
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from collectors.simulators.mqtt_devices import SimulatedMqttDevices
from houqin.commands import CommandQueue, CommandRequest
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.repairs.command_faults import COMMAND_RULE, CommandFaults
from houqin.repairs.faults import FaultBook
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import Firing, ZoneCommander, emergency_end, emergency_start
from houqin.schedules.model import ScheduleIn
from houqin.schedules.scheduler import REPLAN_SETTLE_MAX, Scheduler
from houqin.settings import RepairSettings, ScheduleSettings
from houqin.store import Database
from houqin.store.tables import CommandSource, DeviceCommand, Fault, RepairOrder, ScheduleFiring
from tests.servers import Mosquitto

SHANGHAI = ZoneInfo("Asia/Shanghai")

INVENTORY = """
site: {name: Scheduler test, timezone: Asia/Shanghai, latitude: 30.2741, longitude: 120.1551}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
teams: [{id: electrical, name: Electrical, categories: [lighting, electrical]},
        {id: media, name: Media, categories: [broadcast]}]
gateways: [{id: hall-panel, type: modbus_tcp, host: 127.0.0.1, port: PORT, timeout: 0.3}]
devices:
  - {id: hall-ctl, model: modbus-lighting-4ch, gateway: hall-panel, unit: 1, building: A}
  - {id: lawn-1, model: mqtt-lighting, topic: PREFIX/lawn-1/state, building: A}
  - {id: lawn-2, model: mqtt-lighting, topic: PREFIX/lawn-2/state, building: A}
  - {id: pa-1, model: mqtt-broadcast, topic: PREFIX/pa-1/state, building: A}
zones:
  - {id: hall, kind: lighting, devices: ["hall-ctl:circuit1", "hall-ctl:circuit2"]}
  - {id: lawn, kind: lighting, devices: [lawn-1, lawn-2]}
  - {id: bells, kind: broadcast, devices: [pa-1]}
"""

EVENING = [
    ScheduleIn.model_validate(spec)
    for spec in (
        {
            "name": "hall",
            "zone": "hall",
            "day_types": ["school_day"],
            "entries": [{"at": "18:00", "action": "on"}, {"at": "23:00", "action": "off"}],
        },
        {
            "name": "lawn",
            "zone": "lawn",
            "day_types": ["school_day"],
            "entries": [{"at": "18:00", "action": "dim", "level": 70}, {"at": "23:00", "action": "off"}],
        },
        {
            "name": "bells",
            "zone": "bells",
            "day_types": ["school_day"],
            "entries": [
                {"at": "19:00", "action": "play", "programme": "bell", "duration_s": 20},
                {"at": "19:30", "action": "play", "programme": "bell", "duration_s": 20},
                {
                    "at": "20:00",
                    "action": "play",
                    "programme": "evening-news",
                    "duration_s": 600,
                    "play_if_missed": True,
                },
                {"at": "21:00", "action": "play", "programme": "bell", "duration_s": 60},
            ],
        },
    )
]


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@dataclass
class Campus:
    inventory: Inventory
    database: Database
    mqtt: SimulatedMqttDevices
    panel: SimulatedModbusDevice
    queue: CommandQueue
    book: ScheduleBook
    commander: ZoneCommander
    now: list[datetime] = field(default_factory=list)

    def scheduler(self) -> Scheduler:
        return Scheduler(
            self.book, self.commander, self.inventory, ScheduleSettings(late_grace_s=30), clock=lambda: self.now[0]
        )

    async def until(self, check: Callable[[], bool], seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while not check():
                await asyncio.sleep(0.02)

    def light(self, device: str) -> dict[str, object]:
        state: dict[str, object] = self.mqtt.state[device]["state"]
        return state

    def pa(self) -> dict[str, object]:
        return self.mqtt.state["pa-1"]

    async def firings(self) -> list[tuple[str, str, str]]:
        async with self.database.session() as session:
            rows = (await session.execute(select(ScheduleFiring).order_by(ScheduleFiring.due_at))).scalars()
            return [(row.zone, row.cause, row.outcome) for row in rows]


@pytest.fixture
async def campus(database: Database, mosquitto: Mosquitto, tmp_path: Path) -> AsyncIterator[Campus]:
    models = load_inventory(Path(__file__).parent.parent / "devices.yaml").models
    panel = SimulatedModbusDevice(1, models["modbus-lighting-4ch"])
    gateway = SimulatedGateway([panel], rtu=False)
    await gateway.start()
    prefix = f"t{tmp_path.name[-8:]}"
    (tmp_path / "devices.yaml").write_text(
        INVENTORY.replace("PORT", str(gateway.port)).replace("PREFIX", prefix), encoding="utf-8"
    )
    inventory = load_inventory(tmp_path / "devices.yaml")
    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    mqtt = SimulatedMqttDevices(inventory, url, SHANGHAI, {})
    faults = CommandFaults(FaultBook(database, RepairDesk(inventory, RepairSettings(), SHANGHAI)), inventory)
    now: list[datetime] = []  # the tests' clock, shared by the scheduler and the dispatchers; empty: real time
    queue = CommandQueue(
        database,
        inventory,
        max_attempts=2,
        backoff=0.05,
        on_failed=faults.failed,
        on_confirmed=faults.confirmed,
        clock=lambda: now[0] if now else datetime.now(UTC),
    )
    mqtt_dispatcher: MqttCommandDispatcher | None = None

    async def publish(reading: Reading) -> None:
        if mqtt_dispatcher is not None:
            await mqtt_dispatcher.consume([reading])

    link = MqttLink(url, inventory, publish, client_id=f"houqin-{prefix}")
    mqtt_dispatcher = MqttCommandDispatcher(queue, link, inventory, confirm_within=1.0, every=0.05)
    modbus = ModbusLink(inventory.gateways["hall-panel"])
    modbus_dispatcher = ModbusCommandDispatcher(queue, {"hall-panel": modbus}, inventory, every=0.05)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(component.run(stop)) for component in (link, mqtt, mqtt_dispatcher, modbus_dispatcher)]
    await asyncio.wait_for(link.connected.wait(), 10)
    await asyncio.wait_for(mqtt.subscribed.wait(), 10)
    book = ScheduleBook(database, inventory, SHANGHAI)
    try:
        yield Campus(inventory, database, mqtt, panel, queue, book, ZoneCommander(database, inventory, queue), now)
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=10)
        assert not pending, f"components that did not stop: {pending}"
        await modbus.close()
        await gateway.stop()


async def test_a_restart_mid_evening_reconciles_lights_and_records_missed_bells(campus: Campus) -> None:
    for spec in EVENING:
        await campus.book.save(spec, "li", local("2026-09-07T08:00"))
    first = campus.scheduler()
    campus.now[:] = [local("2026-09-07T17:00")]  # a Monday in term (no terms: always in term)
    await first.tick()  # reconciles to off, and remembers how far it fired
    await campus.until(lambda: campus.light("lawn-1")["on"] is False and campus.panel.values["circuit1_on"] is False)
    await first.release()
    del first  # houqin stops at 17:00 and comes back at 20:05

    second = campus.scheduler()
    campus.now[:] = [local("2026-09-07T20:05")]
    started = asyncio.get_running_loop().time()
    await second.tick()
    await campus.until(
        lambda: (
            campus.light("lawn-1")["on"] is True
            and campus.light("lawn-2")["level"] == 70
            and campus.panel.values["circuit1_on"] is True
            and campus.panel.values["circuit2_on"] is True
        )
    )
    assert asyncio.get_running_loop().time() - started < 5
    assert campus.panel.values["circuit3_on"] is False  # not a member of the zone
    await campus.until(lambda: campus.pa()["programme"] == "evening-news")  # play_if_missed: what remains of it
    firings = await campus.firings()
    assert ("bells", "schedule:3#1", "missed") in firings and ("bells", "schedule:3#2", "missed") in firings
    assert ("bells", "schedule:3#3", "fired") in firings
    async with campus.database.session() as session:
        bells = (await session.execute(select(DeviceCommand).where(DeviceCommand.device == "pa-1"))).scalars().all()
    assert [row.arguments for row in bells] == [{"programme": "evening-news", "duration_s": 300}]  # no late bell

    # A tick later in the evening fires the 21:00 bell once, even when the pass is repeated.
    campus.now[:] = [local("2026-09-07T21:00:01")]
    await second.tick()
    await second.tick()
    await campus.until(lambda: campus.pa()["programme"] == "bell")
    async with campus.database.session() as session:
        count = len((await session.execute(select(DeviceCommand).where(DeviceCommand.device == "pa-1"))).all())
    assert count == 2
    campus.now[:] = [local("2026-09-07T23:00:00")]
    await second.tick()
    await campus.until(lambda: campus.light("lawn-1")["on"] is False and campus.panel.values["circuit1_on"] is False)


async def test_a_pass_prepared_ahead_gives_way_to_a_change_and_to_lateness(campus: Campus) -> None:
    for spec in EVENING:
        await campus.book.save(spec, "li", local("2026-09-07T08:00"))
    scheduler = campus.scheduler()
    campus.now[:] = [local("2026-09-07T17:59:59")]
    assert await scheduler.tick() == local("2026-09-07T18:00")  # reconciled to off; 18:00 is prepared
    [hall] = await campus.book.schedules("hall")
    await campus.book.delete(hall.id)  # a second before 18:00: the hall is not lit tonight
    campus.now[:] = [local("2026-09-07T18:00")]
    await scheduler.tick()
    await campus.until(lambda: campus.light("lawn-2")["level"] == 70)
    await asyncio.sleep(0.3)
    assert campus.panel.values["circuit1_on"] is False
    [only] = [cause for zone, cause, _ in await campus.firings() if zone == "hall"]
    assert only.startswith("reconcile:")  # at 17:59:59, and nothing at 18:00

    campus.now[:] = [local("2026-09-07T18:59:59")]
    assert await scheduler.tick() == local("2026-09-07T19:00")  # the 19:00 bell is prepared...
    campus.now[:] = [local("2026-09-07T19:00:45")]  # ...but reached 45 s late (the grace is 30 s)
    await scheduler.tick()
    assert ("bells", "schedule:3#1", "missed") in await campus.firings()
    assert await campus.queue.recent("pa-1") == []

    campus.now[:] = [local("2026-09-07T22:59:59")]
    assert await scheduler.tick() == local("2026-09-07T23:00")
    campus.now[:] = [local("2026-09-07T23:00:00.004")]  # on time: the prepared pass fires
    await scheduler.tick()
    await campus.until(lambda: campus.light("lawn-1")["on"] is False and campus.light("lawn-2")["on"] is False)
    assert ("lawn", "schedule:2#2", "fired") in await campus.firings()


async def test_a_run_of_schedule_changes_is_planned_once_they_pause(campus: Campus) -> None:
    campus.now[:] = [local("2026-09-07T12:00")]
    scheduler = campus.scheduler()
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))
    await campus.until(lambda: scheduler.active)
    await asyncio.sleep(0.3)
    before = REGISTRY.get_sample_value("houqin_schedule_plans_total") or 0.0
    started = asyncio.get_running_loop().time()
    for n in range(30):  # a term's timetable imported schedule by schedule
        spec = {"name": f"lawn-{n}", "zone": "lawn", "day_types": ["exam_day"],
                "entries": [{"at": f"19:{n:02d}", "until": f"19:{n:02d}:30", "action": "on"}]}  # fmt: skip
        await campus.book.save(ScheduleIn.model_validate(spec), "li", campus.now[0])
    saving = asyncio.get_running_loop().time() - started
    await asyncio.sleep(1.5)
    stop.set()
    await running
    plans = (REGISTRY.get_sample_value("houqin_schedule_plans_total") or 0.0) - before
    # At most one plan per second of saving, and one after (a plan per save made 7 of them here, 30 at worst).
    assert 1 <= plans <= math.ceil(saving / REPLAN_SETTLE_MAX) + 1, (plans, saving)


async def test_an_override_holds_until_it_expires_then_the_schedule_takes_over(campus: Campus) -> None:
    await campus.book.save(EVENING[1], "li", local("2026-09-07T08:00"))
    scheduler = campus.scheduler()
    campus.now[:] = [local("2026-09-07T22:50")]
    await scheduler.tick()
    await campus.until(lambda: campus.light("lawn-1")["level"] == 70)
    zone = campus.inventory.zones["lawn"]
    until = local("2026-09-07T23:30")
    await campus.book.start_override(zone, "on", None, until, "li", "graduation party", campus.now[0])
    await scheduler.tick()
    await campus.until(lambda: campus.light("lawn-1")["level"] == 100)
    campus.now[:] = [local("2026-09-07T23:00")]  # the schedule says off; the override says on
    await scheduler.tick()
    await asyncio.sleep(0.3)
    assert campus.light("lawn-1")["on"] is True
    campus.now[:] = [until]  # the override expires: the schedule takes over at that moment
    next_due = await scheduler.tick()
    await campus.until(lambda: campus.light("lawn-1")["on"] is False and campus.light("lawn-2")["on"] is False)
    assert next_due is not None and next_due > until
    causes = [cause for zone_id, cause, _ in await campus.firings() if zone_id == "lawn"]
    assert causes[-2:] == [causes[-2], "schedule:1#2"] and causes[-2].startswith("override:")


async def test_an_emergency_preempts_a_playing_bell_which_does_not_resume(campus: Campus) -> None:
    bell = ScheduleIn.model_validate(
        {
            "name": "bells",
            "zone": "bells",
            "entries": [{"at": "10:00", "action": "play", "programme": "bell", "duration_s": 60}],
        }
    )
    await campus.book.save(bell, "li", local("2026-09-07T08:00"))
    scheduler = campus.scheduler()
    campus.now[:] = [local("2026-09-07T09:59:59")]
    await scheduler.tick()
    campus.now[:] = [local("2026-09-07T10:00:00")]
    await scheduler.tick()
    await campus.until(lambda: campus.pa()["programme"] == "bell")

    start, until = local("2026-09-07T10:00:20"), local("2026-09-07T10:00:50")
    campus.now[:] = [start]
    row = await campus.book.start_emergency(["bells"], "evacuate", until, "li", "drill", start)
    await campus.commander.record([emergency_start("bells", row.id, row.programme, start, until)], start)
    await campus.until(lambda: campus.pa()["programme"] == "evacuate")
    await asyncio.sleep(0.2)  # the emergency's own confirmation arrives before the clock moves on
    campus.now[:] = [local("2026-09-07T10:00:21")]
    await scheduler.tick()  # the scheduler sees the emergency already fired: nothing twice
    campus.now[:] = [local("2026-09-07T10:00:51")]
    await scheduler.tick()  # the emergency ends: the zone falls silent
    await campus.until(lambda: campus.pa()["playing"] is False)
    await asyncio.sleep(0.5)
    assert campus.pa()["playing"] is False and campus.pa()["programme"] is None  # the bell did not resume
    async with campus.database.session() as session:
        sent = (
            await session.execute(
                select(DeviceCommand.action, DeviceCommand.arguments)
                .where(DeviceCommand.device == "pa-1")
                .order_by(DeviceCommand.id)
            )
        ).all()
    assert [action for action, _ in sent] == ["play", "play", "stop"]
    assert (
        emergency_end("bells", row.id, until, until).key
        == f"bells|emergency:{row.id}:end|{until.astimezone(UTC).isoformat()}"
    )


async def test_a_controller_that_never_answers_fails_raises_a_fault_and_a_repair_order(campus: Campus) -> None:
    campus.mqtt.faults["lawn-2"] = {"offline"}  # takes commands, never reports its state
    row = await campus.queue.enqueue(
        CommandRequest("lawn-2", "light", "on", CommandSource.USER), datetime.now(SHANGHAI)
    )
    good = await campus.queue.enqueue(
        CommandRequest("lawn-1", "light", "on", CommandSource.USER), datetime.now(SHANGHAI)
    )

    async def state(command_id: int) -> tuple[str, int]:
        async with campus.database.session() as session:
            found = await session.get(DeviceCommand, command_id)
            assert found is not None
            return found.state, found.attempts

    async with asyncio.timeout(15):
        while (await state(row.id))[0] != "failed":
            await asyncio.sleep(0.1)
    assert await state(row.id) == ("failed", 2)  # sent, unconfirmed, retried, failed
    assert (await state(good.id))[0] == "confirmed"
    async with asyncio.timeout(5):  # the fault is raised just after the command is marked failed
        while True:
            async with campus.database.session() as session:
                fault = (await session.execute(select(Fault).where(Fault.rule_id == COMMAND_RULE))).scalar()
                order = (
                    await session.get(RepairOrder, fault.repair_order_id) if fault and fault.repair_order_id else None
                )
            if order is not None:
                break
            await asyncio.sleep(0.05)
    assert fault is not None and fault.device == "lawn-2" and fault.state == "active"
    assert order is not None and order.category == "lighting" and "lawn-2 did not carry out light on" in order.title

    campus.mqtt.faults["lawn-2"] = set()  # repaired: the next confirmed command clears the fault
    await campus.queue.enqueue(CommandRequest("lawn-2", "light", "off", CommandSource.USER), datetime.now(SHANGHAI))
    async with asyncio.timeout(10):
        while True:
            async with campus.database.session() as session:
                fault = (await session.execute(select(Fault).where(Fault.rule_id == COMMAND_RULE))).scalar_one()
            if fault.state == "cleared":
                break
            await asyncio.sleep(0.1)


async def zone_commands(campus: Campus, zone: str) -> list[DeviceCommand]:
    async with campus.database.session() as session:
        query = select(DeviceCommand).where(DeviceCommand.zone == zone).order_by(DeviceCommand.id)
        return list((await session.execute(query)).scalars())


async def test_zone_commands_go_out_as_their_firing_commits_unless_the_device_is_busy(campus: Campus) -> None:
    campus.mqtt.faults["lawn-2"] = {"offline"}  # takes commands, never confirms one: it stays in flight
    # Recorded at a time of their own: a dispatcher's claim would stamp the (real) time it sent them.
    on_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    window = timedelta(minutes=5)
    await campus.commander.record([Firing("lawn", "schedule:on", "on", on_at, deadline=on_at + window)], on_at)
    sent = [
        (row.device, row.action, row.state, row.attempts, row.sent_at) for row in await zone_commands(campus, "lawn")
    ]
    assert sent == [("lawn-1", "on", "sent", 1, on_at), ("lawn-2", "on", "sent", 1, on_at)]

    off_at = on_at + timedelta(seconds=1)
    await campus.commander.record([Firing("lawn", "schedule:off", "off", off_at, deadline=off_at + window)], off_at)
    rows = {(row.device, row.action): row for row in await zone_commands(campus, "lawn")}
    # lawn-2's "on" awaits its confirmation: one command in flight per device, so "off" waits its turn.
    assert (rows["lawn-2", "off"].state, rows["lawn-2", "off"].attempts) == ("queued", 0)
    await campus.until(lambda: campus.light("lawn-1")["on"] is False)

    async def after_on_expired() -> dict[tuple[str, str], DeviceCommand]:
        async with asyncio.timeout(10):
            while True:
                rows = {(row.device, row.action): row for row in await zone_commands(campus, "lawn")}
                if rows["lawn-2", "on"].state != "sent" and rows["lawn-1", "off"].state == "confirmed":
                    return rows
                await asyncio.sleep(0.05)

    rows = await after_on_expired()
    # Unconfirmed, it is not tried again: the newer "off" for the same output is what should hold.
    assert rows["lawn-2", "on"].state == "superseded" and rows["lawn-2", "on"].attempts == 1

    # A transaction that does not commit hands nothing over and leaves the device free.
    now = datetime.now(UTC).replace(microsecond=0)
    command = CommandRequest(
        "lawn-1",
        "light",
        "on",
        CommandSource.USER,
        requested_by="test",
        key="test:rolled-back",
        zone="lawn",
        correlation_id="rolled-back",
    )
    with pytest.raises(RuntimeError):
        async with campus.queue.handover() as handover, campus.database.session() as session:
            await handover.add(await session.connection(), [command], now)
            raise RuntimeError("stopped before the commit")
    assert campus.light("lawn-1")["on"] is False
    again = now + timedelta(seconds=1)
    await campus.commander.record([Firing("lawn", "schedule:again", "on", again, deadline=again + window)], again)
    rows = {(row.device, row.action, row.reason): row for row in await zone_commands(campus, "lawn")}
    assert ("lawn-1", "on", "") not in rows  # the rolled-back row
    latest = rows["lawn-1", "on", "zone lawn: schedule:again"]
    assert (latest.state, latest.sent_at) in {("sent", again), ("confirmed", again)}
    await campus.until(lambda: campus.light("lawn-1")["on"] is True)


async def test_a_command_past_its_deadline_is_not_sent(campus: Campus) -> None:
    now = datetime.now(SHANGHAI)
    request = CommandRequest("pa-1", "play", "play", CommandSource.SCHEDULE, deadline=now - timedelta(seconds=1),
                             arguments={"programme": "bell", "duration_s": 20})  # fmt: skip
    late = await campus.queue.enqueue(request, now)
    async with asyncio.timeout(5):
        while (await campus.queue.recent("pa-1"))[0].state != "failed":
            await asyncio.sleep(0.05)
    assert "deadline" in (await campus.queue.recent("pa-1"))[0].last_error and late.id
    assert campus.pa()["playing"] is False


async def test_only_one_scheduler_is_active_per_database(campus: Campus) -> None:
    one, two = campus.scheduler(), campus.scheduler()
    campus.now[:] = [local("2026-09-07T12:00")]
    await one.tick()
    assert await two.tick() is None and one.active and not two.active
    campus.now[:] = [local("2026-09-07T12:00:20")]  # one stopped renewing: its lease ran out
    await two.tick()
    assert two.active
    await one.tick()
    assert not one.active
