"""Dorm power as a schedule target (SQLite and PostgreSQL, a clock the test drives): the scheduler cuts a
building's rooms at curfew and gives power back in the morning through the power policy — only to rooms
otherwise allowed it; a restart inside the curfew reconciles without switching twice; a make-up day follows
its weekday; an exam day runs its own schedule with a night power limit that the overload guard applies;
an override by hand ends on its own."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select

from houqin.billing.curfew import Curfew
from houqin.billing.ledger import ensure_wallets
from houqin.billing.overload import OverloadGuard
from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.schedules.book import ScheduleBook
from houqin.schedules.calendar import SpecialDay
from houqin.schedules.commander import ZoneCommander, override_firing
from houqin.schedules.model import ScheduleIn
from houqin.schedules.scheduler import Scheduler
from houqin.settings import BillingSettings, ScheduleSettings
from houqin.store import Database
from houqin.store.tables import ScheduleFiring, Wallet
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
