"""Rule files checked like the inventory; conditions with duration and hysteresis; the engine over the
fault book: one order per fault over many cycles, across a restart, and with time as the only witness."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from houqin.accounts import NewAccount, add_account
from houqin.config_file import ConfigError
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.repairs.faults import FaultBook
from houqin.repairs.orders import RepairDesk
from houqin.settings import InfluxSettings, RepairSettings, TelemetrySettings
from houqin.store import Database
from houqin.store.tables import Fault, RepairEvent, RepairOrder, Role
from houqin.telemetry.embedded_store import EmbeddedStore
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.spool import Spool
from rules.conditions import Transition, Verdict, Watch
from rules.engine import RulesEngine, render_title
from rules.loader import DEFAULT_RULES, load_rules
from rules.model import Rule
from rules.silence import SharedSilence
from tests.api_client import PASSWORD
from tests.servers import free_port

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_the_shipped_rules_fit_the_demo_campus(demo_inventory: Inventory) -> None:
    rules = load_rules([DEFAULT_RULES], demo_inventory)
    assert {"low-voltage", "meter-offline", "night-water-flow", "room-energy-anomaly"} <= {r.id for r in rules}
    # High-power appliances are the power policy's (ApplianceGuard), not an electrician's repair order.
    assert "illegal-appliance" not in {r.id for r in rules}


def test_mistakes_in_a_rule_file_are_all_reported_with_lines(tmp_path: Path, demo_inventory: Inventory) -> None:
    site = tmp_path / "site-rules.yaml"
    site.write_text(
        "rules:\n"
        "  - id: low-voltage\n"  # 2: already shipped
        "    condition: {kind: threshold, field: voltage, below: 190, for: 30}\n"
        "    repair: {category: electrical}\n"
        "    title: x\n"
        "  - id: boiler-hot\n"  # 6
        "    condition: {kind: threshold, field: temperature, above: 90}\n"  # 7: no "for"
        "    repair: {category: boilers}\n"
        "    title: x\n"
        "  - id: pump-current\n"  # 10
        "    select: {kinds: [water]}\n"
        "    condition: {kind: threshold, field: current, above: 9, for: 5}\n"
        "    repair: {category: heating}\n"  # 13: no team owns it
        "    title: '{building}: pump current {current:.1f} A'\n"
        "  - id: cut-the-lights\n"  # 15
        "    select: {models: [modbus-lighting-4ch]}\n"
        "    condition: {kind: stuck, field: circuit1_current, for: 60}\n"
        "    repair: {category: lighting}\n"
        "    title: x\n"
        "    actions: [cut_relay]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_rules([DEFAULT_RULES, site], demo_inventory)
    text = str(caught.value)
    assert "site-rules.yaml:2: rules[0].id: rule 'low-voltage' is already defined in" in text
    assert "site-rules.yaml:7: rules[1].condition.threshold.for: required field is missing" in text
    assert "site-rules.yaml:13: rules[2].repair.category: no team owns 'heating'" in text
    assert (
        "rules[2].condition: none of the selected devices (cjt188-cold-water-valve, mqtt-water-meter) reports current"
        in text
    )
    assert "rules[3].actions: cut_relay: none of the devices it watches is in a room with a relay" in text
    site.write_text("replace: true\nrules:\n  - id: low-voltage\n"
                    "    select: {kinds: [electricity], has_fields: [voltage]}\n"
                    "    condition: {kind: threshold, field: voltage, below: 190, for: 30}\n"
                    "    repair: {category: electrical}\n    title: x\n", encoding="utf-8")  # fmt: skip
    rules = {rule.id: rule for rule in load_rules([DEFAULT_RULES, site], demo_inventory)}
    assert rules["low-voltage"].condition.below == 190  # type: ignore[union-attr]


def rule(condition: dict[str, object], **extra: object) -> Rule:
    return Rule.model_validate({"id": "r", "condition": condition, "repair": {"category": "electrical"},
                                "title": "{building} {room}: {voltage:.0f} V", **extra})  # fmt: skip


def test_a_threshold_needs_its_duration_and_clears_with_hysteresis(demo_inventory: Inventory) -> None:
    watch = Watch(rule({"kind": "threshold", "field": "voltage", "below": 198, "for": 60, "clear": 205,
                        "clear_for": 30}), demo_inventory.devices["d1-101-meter"])  # fmt: skip
    low, mid, high = Verdict(True, False, 190.0), Verdict(False, False, 200.0), Verdict(False, True, 220.0)
    assert watch.step(low, T0) == [Transition.BEGIN]
    assert watch.step(mid, T0 + timedelta(seconds=30)) == [Transition.DISCARD]  # did not last: noise
    assert watch.step(low, T0 + timedelta(seconds=40)) == [Transition.BEGIN]
    assert watch.step(low, T0 + timedelta(seconds=100)) == [Transition.ACTIVATE]
    assert watch.step(mid, T0 + timedelta(seconds=110)) == []  # back above 198, not yet above 205
    assert watch.step(high, T0 + timedelta(seconds=120)) == []
    assert watch.step(mid, T0 + timedelta(seconds=140)) == []  # the clear must last 30 s unbroken
    assert watch.step(high, T0 + timedelta(seconds=150)) == []
    assert watch.step(high, T0 + timedelta(seconds=180)) == [Transition.CLEAR]
    assert render_title(watch.rule.title, watch) == "dorm-1 D1-101: ? V"  # no reading kept in this watch
    watch.fields = {"voltage": 187.6}
    assert render_title(watch.rule.title, watch) == "dorm-1 D1-101: 188 V"


async def engine_with_orders(database: Database, inventory: Inventory, rules: list[Rule]) -> RulesEngine:
    async with database.session() as session:
        await add_account(session, NewAccount("zhang", Role.WORKER, PASSWORD, team="electrical"), inventory)
        await session.commit()
    book = FaultBook(database, RepairDesk(inventory, RepairSettings(), TZ))
    return RulesEngine(rules, inventory, book, RepairSettings(), TZ)


def meter_reading(inventory: Inventory, ts: datetime, voltage: float) -> Reading:
    device = inventory.devices["d1-101-meter"]
    return Reading(device.id, ts, {"voltage": voltage, "power": 300.0}, inventory.device_tags(device))


async def count(database: Database, table: type) -> int:  # type: ignore[type-arg]
    async with database.session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_a_persisting_fault_opens_one_order_over_many_cycles_and_a_restart(
    database: Database, demo_inventory: Inventory
) -> None:
    sag = rule({"kind": "threshold", "field": "voltage", "below": 198, "for": 10, "clear": 205},
               select={"devices": ["d1-101-meter"]})  # fmt: skip
    engine = await engine_with_orders(database, demo_inventory, [sag])
    await engine.restore(T0)
    for second in range(1000):
        await engine.consume([meter_reading(demo_inventory, T0 + timedelta(seconds=second), 185.0)])
    assert await count(database, RepairOrder) == 1 and await count(database, Fault) == 1
    # houqin restarts in the middle of the fault: the new engine resumes it.
    again = RulesEngine([sag], demo_inventory, engine.faults, RepairSettings(), TZ)
    await again.restore(T0 + timedelta(seconds=1000))
    for second in range(1000, 1100):
        await again.consume([meter_reading(demo_inventory, T0 + timedelta(seconds=second), 185.0)])
    assert await count(database, RepairOrder) == 1 and await count(database, Fault) == 1
    await again.consume([meter_reading(demo_inventory, T0 + timedelta(seconds=1200), 221.0)])
    async with database.session() as session:
        fault = (await session.execute(select(Fault))).scalar_one()
        order = (await session.execute(select(RepairOrder))).scalar_one()
        notes = (await session.execute(select(RepairEvent.note).where(RepairEvent.kind == "note"))).scalars().all()
    assert fault.state == "cleared" and order.title == "dorm-1 D1-101: 185 V" and order.category == "electrical"
    assert order.assignee_id is not None and any("fault cleared" in note for note in notes)


async def test_silence_is_an_offline_fault_and_a_reading_clears_it(
    database: Database, demo_inventory: Inventory
) -> None:
    offline = Rule.model_validate({"id": "silent", "select": {"devices": ["d1-101-meter"]},
                                   "condition": {"kind": "offline", "after": 30}, "repair": {"category": "meter"},
                                   "title": "{device} is silent", "auto_resolve": True})  # fmt: skip
    engine = await engine_with_orders(database, demo_inventory, [offline])
    await engine.restore(T0)
    [watch] = [w for watches in engine._watches.values() for w in watches]
    from rules.conditions import elapse

    assert elapse(watch, T0 + timedelta(seconds=20)) is None
    verdict = elapse(watch, T0 + timedelta(seconds=31))
    assert verdict is not None
    await engine._apply(watch, verdict, T0 + timedelta(seconds=31))
    assert watch.phase == "active" and await count(database, RepairOrder) == 1
    await engine.consume([meter_reading(demo_inventory, T0 + timedelta(seconds=40), 220.0)])
    async with database.session() as session:
        order = (await session.execute(select(RepairOrder))).scalar_one()
    assert order.status == "resolved"  # nobody had started on it: resolved when the meter came back


async def test_a_room_using_three_times_its_usual_energy_is_an_anomaly(
    database: Database, demo_inventory: Inventory, tmp_path: Path
) -> None:
    from houqin.settings import TelemetrySettings
    from houqin.telemetry.embedded_store import EmbeddedStore

    anomaly = Rule.model_validate({"id": "heavy", "select": {"devices": ["d1-101-meter"]},
                                   "condition": {"kind": "anomaly", "factor": 3, "days": 7, "min_usage": 0.5},
                                   "repair": {"category": "electrical"},
                                   "title": "{room}: {value:.1f} kWh today"})  # fmt: skip
    store = EmbeddedStore(tmp_path / "telemetry.sqlite3", TelemetrySettings())
    device = demo_inventory.devices["d1-101-meter"]
    now = datetime.now(TZ).replace(hour=15, minute=20, second=0, microsecond=0)
    if now > datetime.now(TZ):
        now -= timedelta(days=1)
    midnight = now.replace(hour=0, minute=0)
    energy, readings = 100.0, []
    moment = midnight - timedelta(days=8)
    while moment <= now:
        energy += 0.1 if moment < midnight else 0.4  # 2.4 kWh a day until today, four times that today
        readings.append(Reading(device.id, moment.astimezone(UTC), {"energy": energy},
                                demo_inventory.device_tags(device)))  # fmt: skip
        moment += timedelta(hours=1)
    await store.consume(readings)
    engine = await engine_with_orders(database, demo_inventory, [anomaly])
    engine.telemetry = store
    # Several processes: the one that reads the meter judges it; this one has not heard it yet.
    engine.silence = SharedSilence(store)
    await engine.restore(now)
    await engine.check_history(now.astimezone(UTC))
    assert await count(database, RepairOrder) == 0
    # The meter's gateway is this process's now.
    await engine.consume(
        [Reading(device.id, now.astimezone(UTC), {"energy": energy}, demo_inventory.device_tags(device))]
    )
    await engine.check_history(now.astimezone(UTC))
    async with database.session() as session:
        order = (await session.execute(select(RepairOrder))).scalar_one()
    assert order.title == f"D1-101: {0.4 * 15:.1f} kWh today" and order.rule_id == "heavy"
    await store.close()


async def test_two_engines_sharing_the_store_open_one_order(database: Database, demo_inventory: Inventory) -> None:
    """Two houqin processes reading the same meter (each with its own engine and connections)."""
    sag = rule({"kind": "threshold", "field": "voltage", "below": 198, "for": 5, "clear": 205},
               select={"devices": ["d1-101-meter"]})  # fmt: skip
    first = await engine_with_orders(database, demo_inventory, [sag])
    book = FaultBook(database, RepairDesk(demo_inventory, RepairSettings(), TZ))
    second = RulesEngine([sag], demo_inventory, book, RepairSettings(), TZ)
    await first.restore(T0)
    await second.restore(T0)
    for step in range(200):
        reading = meter_reading(demo_inventory, T0 + timedelta(seconds=step), 185.0)
        await asyncio.gather(first.consume([reading]), second.consume([reading]))
    assert await count(database, RepairOrder) == 1 and await count(database, Fault) == 1


async def test_anomaly_checks_pause_quietly_while_influxdb_is_away_and_resume(
    database: Database, demo_inventory: Inventory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Anomaly watches on 60 meters, InfluxDB stopped: one ERROR line for the whole outage, not one per
    watch and check; once it answers, the checks resume (and say so)."""
    from houqin.settings import InfluxSettings, TelemetrySettings
    from houqin.telemetry.influx_store import InfluxStore
    from houqin.telemetry.spool import Spool
    from tests.servers import influxd_server

    anomaly = Rule.model_validate({"id": "heavy", "select": {"kinds": ["electricity"], "has_fields": ["energy"]},
                                   "condition": {"kind": "anomaly", "factor": 3, "days": 7, "check_every": 60},
                                   "repair": {"category": "electrical"}, "title": "{device}"})  # fmt: skip
    with influxd_server() as influxd:
        telemetry = TelemetrySettings()
        store = InfluxStore(InfluxSettings(url=influxd.url, api="v1", database="quiet"), telemetry,
                            Spool(tmp_path / "spool", telemetry.spool_max_bytes))  # fmt: skip
        engine = await engine_with_orders(database, demo_inventory, [anomaly])
        engine.telemetry = store
        now = datetime.now(UTC).replace(minute=30)
        if now.astimezone(TZ).hour == 0:
            now += timedelta(hours=2)  # a day with at least one whole hour in it
        await engine.restore(now)
        influxd.stop()
        caplog.set_level(logging.INFO, logger="rules.engine")
        caplog.clear()
        for minute in range(0, 10):  # ten minutes of checks, one every 10 s
            for second in range(0, 60, 10):
                await engine.check_history(now + timedelta(minutes=minute, seconds=second))
        errors = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert len(errors) == 1 and "anomaly checks paused" in errors[0].getMessage(), errors
        assert not errors[0].exc_info  # an outage, not a bug: no traceback
        influxd.start()
        await store.client.create_database()  # what the store's writer does at its start
        await engine.check_history(now + timedelta(minutes=11))
        assert any("anomaly checks resume" in record.getMessage() for record in caplog.records)
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
        await store.client.close()


async def test_a_main_meter_its_sub_meters_do_not_account_for_opens_an_order(
    database: Database, demo_inventory: Inventory, tmp_path: Path
) -> None:
    """The shipped balance rule on the demo's dorm 1: the main meter used 100 kWh yesterday, its 30 room
    meters 72 between them: 28 % unaccounted, over the 15 % the rule allows. A room meter silent all day
    gives no verdict (it is not theft; the offline rule reports it)."""
    from houqin.settings import TelemetrySettings
    from houqin.telemetry.embedded_store import EmbeddedStore
    from rules.loader import load_rules, rule_files

    [balance] = [r for r in load_rules(rule_files([]), demo_inventory) if r.id == "meter-tree-balance"]
    rooms = [d.id for d in demo_inventory.devices.values() if d.parent == "dorm1-main-meter"]
    assert len(rooms) == 30

    async def engine_on(readings: dict[str, float], silent: str | None = None) -> list[RepairOrder]:
        store = EmbeddedStore(tmp_path / f"telemetry-{silent}.sqlite3", TelemetrySettings())
        now = datetime.now(TZ).replace(hour=9, minute=0, second=0, microsecond=0)
        start = now.replace(hour=0) - timedelta(days=1, hours=1)
        points = []
        for meter, per_day in readings.items():
            tags = demo_inventory.device_tags(demo_inventory.devices[meter])
            for hour in range(0, 34):
                if meter == silent and 1 <= hour <= 24:
                    continue
                at = start + timedelta(hours=hour)
                points.append(Reading(meter, at.astimezone(UTC), {"energy": 1000 + per_day * hour / 24}, tags))
        await store.consume(points)
        async with database.session() as session:
            await session.execute(delete(RepairOrder))
            await session.execute(delete(Fault))
            await session.commit()
        book = FaultBook(database, RepairDesk(demo_inventory, RepairSettings(), TZ))
        engine = RulesEngine([balance], demo_inventory, book, RepairSettings(), TZ, telemetry=store)
        await engine.restore(now)
        await engine.check_history(now.astimezone(UTC))
        await store.close()
        async with database.session() as session:
            return list((await session.execute(select(RepairOrder))).scalars())

    use = {"dorm1-main-meter": 100.0, **dict.fromkeys(rooms, 2.4)}
    [order] = await engine_on(use)
    assert order.rule_id == "meter-tree-balance" and "28% of dorm1-main-meter" in order.title
    assert await engine_on(use, silent=rooms[3]) == []
    assert await engine_on({**use, "dorm1-main-meter": 80.0}) == []  # 10 %: within what the rule allows


async def test_a_device_another_process_reads_is_not_offline_here(
    database: Database, demo_inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> None:
    """Two processes: d1-101-meter's gateway moved to the other process, whose readings reach the shared
    store only; d1-102-meter answers nobody. The faults this process opened while both were silent: d1-102's
    stays, d1-101's clears once the store shows the meter answering; a store that cannot be read calls
    nobody offline."""
    silent = Rule.model_validate({"id": "silent", "select": {"devices": ["d1-101-meter", "d1-102-meter"]},
                                  "condition": {"kind": "offline", "after": 30, "clear_for": 0},
                                  "repair": {"category": "meter"}, "title": "{device} is silent",
                                  "auto_resolve": True})  # fmt: skip
    engine = await engine_with_orders(database, demo_inventory, [silent])
    engine.silence = SharedSilence(telemetry)
    now = datetime.now(UTC)
    await engine.restore(now - timedelta(seconds=200))
    watches = {w.device.id: w for watches in engine._watches.values() for w in watches}
    await engine.check_silence(now - timedelta(seconds=150))  # nobody has heard of either
    assert {w.phase for w in watches.values()} == {"active"}

    other_process = [meter_reading(demo_inventory, now - timedelta(seconds=s), 220.0) for s in (25, 15, 5)]
    await telemetry.consume(other_process)
    await engine.check_silence(now)
    assert watches["d1-101-meter"].phase == "ok" and watches["d1-102-meter"].phase == "active"
    async with database.session() as session:
        states = dict((await session.execute(select(Fault.device, Fault.state))).all())
    assert states == {"d1-101-meter": "cleared", "d1-102-meter": "active"}

    await engine.check_silence(now + timedelta(seconds=20))  # its last reading, 5 s old, holds for 30 s
    assert watches["d1-101-meter"].phase == "ok"
    # The store cannot be read (an InfluxDB nobody answers for): nobody is called offline meanwhile.
    unreachable = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", api="v1")
    engine.silence.telemetry = InfluxStore(unreachable, TelemetrySettings(), Spool(tmp_path / "spool", 1 << 20))
    await engine.check_silence(now + timedelta(seconds=200))
    assert watches["d1-101-meter"].phase == "ok"
