"""Dorm power as a schedule target (SQLite and PostgreSQL, a clock the test drives): the scheduler cuts a
building's rooms at curfew and gives power back in the morning through the power policy — only to rooms
otherwise allowed it; a restart inside the curfew reconciles without switching twice; a make-up day follows
its weekday; an exam day runs its own schedule with a night power limit that the overload guard applies;
an override by hand ends on its own."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from assembly import ProcessRole, assemble
from assembly.graph import Tuning
from houqin.billing.credits import credit
from houqin.billing.curfew import Curfew
from houqin.billing.ledger import ensure_wallets, post
from houqin.billing.overload import OverloadGuard
from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.schedules.book import ScheduleBook
from houqin.schedules.calendar import SpecialDay
from houqin.schedules.commander import ZoneCommander, override_firing
from houqin.schedules.model import ScheduleIn
from houqin.schedules.scheduler import Scheduler
from houqin.settings import BillingSettings, ScheduleSettings, Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import EntryKind, ScheduleFiring, Wallet
from tests.test_room_policy import SHANGHAI, Room, policy_for

ZONE = "dorm-1-power"
CURFEW = ScheduleIn.model_validate({
    "name": "dorm-1 school nights", "zone": ZONE, "day_types": ["school_day"],
    "entries": [{"at": "23:30", "until": "06:30", "action": "off"}],
})  # fmt: skip
EXAMS = ScheduleIn.model_validate({
    "name": "dorm-1 exam nights", "zone": ZONE, "day_types": ["exam_day"],
    "entries": [{"at": "23:00", "until": "07:00", "action": "limit", "limit_w": 300}],
})  # fmt: skip


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A local time in November 2026 (the 23rd is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


class Campus:
    def __init__(self, database: Database, inventory: Inventory, policy: PowerPolicy) -> None:
        self.database, self.inventory, self.policy = database, inventory, policy
        self.book = ScheduleBook(database, inventory, SHANGHAI)
        self.commander = ZoneCommander(database, inventory, policy.commands, Curfew(policy))  # type: ignore[arg-type]
        self.now = at(23, 22)

    def scheduler(self) -> Scheduler:
        return Scheduler(self.book, self.commander, self.inventory, ScheduleSettings(), clock=lambda: self.now)

    async def tick(self, scheduler: Scheduler, when: datetime) -> None:
        self.now = when
        await scheduler.tick()

    async def curfew(self) -> dict[str, bool]:
        async with self.database.session() as session:
            return dict((await session.execute(select(Wallet.room, Wallet.curfew))).all())

    async def firings(self) -> list[tuple[str, str]]:
        async with self.database.session() as session:
            rows = await session.execute(
                select(ScheduleFiring.cause, ScheduleFiring.action).where(ScheduleFiring.zone == ZONE)
                .order_by(ScheduleFiring.id)
            )  # fmt: skip
            return [(cause.split("#")[0], action) for cause, action in rows.all()]


async def test_the_curfew_follows_the_calendar_and_restores_only_rooms_allowed_power(
    database: Database, demo_inventory: Inventory
) -> None:
    rooms = demo_inventory.zone_rooms(demo_inventory.zones[ZONE])
    assert len(rooms) == 30 and all(room.startswith("D1-") for room in rooms)
    await ensure_wallets(database, list(demo_inventory.rooms))
    policy = policy_for(database, demo_inventory)
    campus = Campus(database, demo_inventory, policy)
    paid, broke, locked = (Room(database, policy, room) for room in ("D1-101", "D1-102", "D1-103"))
    await paid.move(3000, at(23, 12))
    await broke.move(-100, at(23, 12))  # cut for money
    await locked.move(3000, at(23, 12))
    await policy.lock("D1-103", at(23, 12), "li", "电热毯")
    other = Room(database, policy, "D2-101")  # another building: no curfew there
    await other.move(3000, at(23, 12))
    await campus.book.save(CURFEW, "li", at(23, 12))

    scheduler = campus.scheduler()
    await campus.tick(scheduler, at(23, 22))  # the first pass reconciles: power is on, nothing to switch
    assert await paid.relay() == [] and not any((await campus.curfew()).values())
    await campus.tick(scheduler, at(23, 23, 30))
    assert await paid.relay() == ["off"] and await broke.relay() == ["off"] and await locked.relay() == ["off"]
    under = await campus.curfew()
    assert all(under[room] for room in rooms) and not under["D2-101"]
    assert await other.relay() == []
    assert len(await Room(database, policy, "D1-310").relay()) == 1  # every room with power was switched off

    await paid.move(500, at(24, 1))  # a top-up in the night moves the balance, not the power
    await broke.move(2000, at(24, 1))
    assert await paid.relay() == ["off"] and await broke.relay() == ["off"]

    await campus.tick(scheduler, at(24, 6, 30))
    assert await paid.relay() == ["off", "on"] and await broke.relay() == ["off", "on"]
    assert await locked.relay() == ["off"]  # locked stays off until staff unlock it
    assert not any((await campus.curfew()).values())
    assert await campus.firings() == [("reconcile:default", "on"), ("schedule:1", "off"), ("default", "on")]

    # Stopped before 23:30 and started again at 23:45: the start reconciles the rooms into the curfew, once.
    await scheduler.release()
    restarted = campus.scheduler()
    await campus.tick(restarted, at(24, 23, 45))
    assert await paid.relay() == ["off", "on", "off"]
    await scheduler.release()
    again = campus.scheduler()
    await restarted.release()
    await campus.tick(again, at(24, 23, 50))  # another restart: already under curfew, nothing switched twice
    assert await paid.relay() == ["off", "on", "off"]
    assert (await campus.firings())[-2:] == [("reconcile:schedule:1", "off"), ("reconcile:schedule:1", "off")]

    # Staff give dorm 1 power until 01:00 (a power-cut drill ended early); the curfew resumes at 01:00.
    zone = demo_inventory.zones[ZONE]
    override = await campus.book.start_override(zone, "on", None, at(25, 1).astimezone(SHANGHAI), "li", "演练",
                                                at(24, 23, 55))  # fmt: skip
    await campus.commander.record(
        [override_firing(ZONE, override.id, "on", None, override.starts_at, override.until)], at(24, 23, 55)
    )
    assert await paid.relay() == ["off", "on", "off", "on"]
    await campus.tick(again, at(24, 23, 55))  # the scheduler, woken by the change, finds the override's firing
    assert await paid.relay() == ["off", "on", "off", "on"]
    await campus.tick(again, at(25, 1))
    assert await paid.relay() == ["off", "on", "off", "on", "off"]
    await campus.tick(again, at(25, 6, 30))
    assert await paid.relay() == ["off", "on", "off", "on", "off", "on"]


async def test_make_up_days_exam_nights_and_the_night_limit(database: Database, demo_inventory: Inventory) -> None:
    await ensure_wallets(database, list(demo_inventory.rooms))
    billing = {"power_limit_w": 1500, "trip_after_s": 10, "trip_restore_min": 30}
    policy = policy_for(database, demo_inventory, **billing)
    campus = Campus(database, demo_inventory, policy)
    room = Room(database, policy, "D1-101")
    await room.move(3000, at(27, 12))
    await campus.book.save(CURFEW, "li", at(27, 12))
    await campus.book.save(EXAMS, "li", at(27, 12))
    # Saturday the 28th is a make-up school day (调休) that follows Monday; Monday the 30th is an exam day.
    await campus.book.set_day(SpecialDay(date(2026, 11, 28), "school_day", follows=0, note="调休"))
    await campus.book.set_day(SpecialDay(date(2026, 11, 30), "exam_day", note="期末考试"))
    scheduler = campus.scheduler()
    await campus.tick(scheduler, at(27, 22))
    await campus.tick(scheduler, at(27, 23, 30))  # Friday, a school day
    await campus.tick(scheduler, at(28, 6, 30))
    await campus.tick(scheduler, at(28, 23, 30))  # the make-up Saturday: curfew
    await campus.tick(scheduler, at(29, 6, 30))
    await campus.tick(scheduler, at(29, 23, 30))  # Sunday, a weekend: no curfew that night
    assert await room.relay() == ["off", "on", "off", "on"]

    await campus.tick(scheduler, at(30, 23))  # the exam day: a 300 W limit from 23:00 instead of a cut
    async with database.session() as session:
        wallet = await session.get(Wallet, "D1-101")
        assert wallet is not None and wallet.night_limit_w == 300 and not wallet.curfew
    assert await room.relay() == ["off", "on", "off", "on"]
    guard = OverloadGuard(demo_inventory, policy, BillingSettings(**billing))  # type: ignore[arg-type]
    meter = demo_inventory.rooms["D1-101"].meter
    other = demo_inventory.rooms["D2-101"].meter
    lamp = [Reading(device, at(30, 23, 10) + timedelta(seconds=s), {"power": 500.0}, {"kind": "electricity"})
            for s in (0, 11) for device in (meter, other)]  # fmt: skip
    await guard.consume(lamp)  # 500 W: over the night limit in dorm 1, under the day limit elsewhere
    assert guard.trips == 1 and await room.relay() == ["off", "on", "off", "on", "off"]
    await campus.tick(scheduler, datetime(2026, 12, 1, 7, tzinfo=SHANGHAI))  # the limit ends at 07:00
    async with database.session() as session:
        wallet = await session.get(Wallet, "D1-101")
        assert wallet is not None and wallet.night_limit_w is None
    await guard.refresh_night_limits()
    assert guard.night == {}
    # Tuesday the 1st of December is a holiday: no curfew that night.
    relays = await room.relay()
    await campus.book.set_day(SpecialDay(date(2026, 12, 1), "holiday", note="校庆"))
    await campus.tick(scheduler, datetime(2026, 12, 1, 23, 30, tzinfo=SHANGHAI))
    await campus.tick(scheduler, datetime(2026, 12, 2, 6, 30, tzinfo=SHANGHAI))
    assert await room.relay() == relays


CAMPUS = """
site: {name: Curfew campus, timezone: Asia/Shanghai}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
gateways: [{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.3}]
devices:
ROOMS
zones:
  - {id: dorm-9-power, kind: dorm_power, buildings: [dorm-9]}
"""
NAMES = ["R101", "R102", "R103", "R104", "R105", "R106"]


def campus_text() -> str:
    devices, rooms = [], ["rooms:"]
    for n, room in enumerate(NAMES):
        where = f"building: dorm-9, floor: 1, room: {room}, poll_interval: 0.5"
        devices.append(f"  - {{id: {room}-m, model: eastron-sdm120, gateway: floor1, unit: {n + 1}, {where}}}")
        devices.append(f"  - {{id: {room}-r, model: generic-relay, gateway: floor1, unit: {n + 11}, {where}}}")
        rooms.append(f"  - {{id: {room}, building: dorm-9, floor: 1, meter: {room}-m, relay: {room}-r, tariff: flat}}")
    return CAMPUS.replace("ROOMS", "\n".join(devices + rooms))


async def test_a_curfew_on_a_simulated_building_cuts_its_relays_and_restores_only_rooms_allowed_power(
    tmp_path: Path,
) -> None:
    """Real Modbus relays behind a simulated gateway, the scheduler on the wall clock: every room with power
    is off within 10 s of the curfew's time; a top-up in the night restores nothing; at the end the locked
    room stays off and the others (the one paid up in the night too) come back."""
    (tmp_path / "devices.yaml").write_text(campus_text(), encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.sqlite3'}")
    await upgrade_database(database)
    await ensure_wallets(database, NAMES)
    async with database.session() as session:
        for room in NAMES[:-1]:
            await post(session, room, EntryKind.ADJUSTMENT, 5000, datetime.now(UTC), key=f"open:{room}", cause="t")
        await session.commit()
    settings = Settings(data_dir=tmp_path, timezone="Asia/Shanghai")
    roles = {ProcessRole.COLLECT, ProcessRole.BILLING, ProcessRole.SCHEDULER}
    async with assemble(settings, inventory, roles=roles, simulate=True, database=database,
                        tuning=Tuning(command_backoff_s=0.1)) as houqin:  # fmt: skip
        assert houqin.simulator is not None
        relays = {room: houqin.simulator.devices[f"{room}-r"] for room in NAMES}
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        try:
            await houqin.power_policy.lock("R105", datetime.now(UTC), "li", "电热毯")
            # R106 is in arrears: cut for money.
            await credit(database, houqin.power_policy, "R106", EntryKind.ADJUSTMENT, -100, datetime.now(UTC),
                         key="arrears", cause="t")  # fmt: skip

            async def closed() -> dict[str, bool]:
                return {room: bool(relay.values["relay_closed"]) for room, relay in relays.items()}

            async def until(wanted: dict[str, bool], seconds: float) -> float:
                started = time.monotonic()
                while await closed() != wanted:
                    assert time.monotonic() - started < seconds, await closed()
                    await asyncio.sleep(0.1)
                return time.monotonic() - started

            before = {room: room not in {"R105", "R106"} for room in NAMES}
            await until(before, 15)
            cut = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
            back = cut + timedelta(seconds=12)
            entries = [{"at": moment.astimezone(SHANGHAI).strftime("%H:%M:%S"), "action": action,
                        "dates": [moment.astimezone(SHANGHAI).date().isoformat()]}
                       for moment, action in ((cut, "off"), (back, "on"))]  # fmt: skip
            spec = ScheduleIn.model_validate({"name": "tonight", "zone": "dorm-9-power", "entries": entries})
            await houqin.schedule_book.save(spec, "li", datetime.now(UTC))
            await asyncio.sleep((cut - datetime.now(UTC)).total_seconds())
            assert await until(dict.fromkeys(NAMES, False), 10) < 10
            # Paid up in the night: the balance moves, not the power.
            await credit(database, houqin.power_policy, "R106", EntryKind.TOPUP, 3000, datetime.now(UTC),
                         key="night", cause="t")  # fmt: skip
            await asyncio.sleep(1)
            assert not any((await closed()).values())
            await asyncio.sleep(max(0.0, (back - datetime.now(UTC)).total_seconds()))
            assert await until({room: room != "R105" for room in NAMES}, 10) < 10
        finally:
            stop.set()
            await running
    await database.close()
