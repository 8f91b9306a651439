"""The dorm curfew as a state the power policy weighs (on SQLite and PostgreSQL): it bills nothing, a
top-up during it changes the balance and not the power, its end restores only the rooms otherwise allowed
power (not cut for money, not locked, not inside a trip), and a firing replayed switches nothing twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from houqin.billing.curfew import Curfew
from houqin.billing.ledger import ensure_wallets
from houqin.billing.overload import OverloadGuard
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.settings import BillingSettings
from houqin.store import Database
from houqin.store.tables import LedgerEntry
from tests.test_room_policy import Room, local, policy_for

ROOMS = ["D1-101", "D1-102", "D1-103", "D1-104"]


async def test_curfew_cuts_what_has_power_and_its_end_restores_only_what_may_have_it(
    database: Database, demo_inventory: Inventory
) -> None:
    await ensure_wallets(database, ROOMS)
    policy = policy_for(database, demo_inventory, power_limit_w=1500, trip_after_s=10, trip_restore_min=30)
    curfew = Curfew(policy)
    normal, broke, locked, tripped = (Room(database, policy, room) for room in ROOMS)
    evening = local(22)
    await normal.move(3000, evening)
    await broke.move(-100, evening)  # cut for money
    await locked.move(3000, evening)
    await policy.lock("D1-103", evening, "li", "电热毯")
    await tripped.move(3000, evening)
    guard = OverloadGuard(demo_inventory, policy, BillingSettings(power_limit_w=1500, trip_after_s=10,
                                                                  trip_restore_min=30))  # fmt: skip
    meter = demo_inventory.rooms["D1-104"].meter
    heater = local(23, 20)  # tripped for 30 min: until 23:50, inside the curfew
    await guard.consume([Reading(meter, heater + timedelta(seconds=s), {"power": 2500.0}, {"kind": "electricity"})
                         for s in (0, 11)])  # fmt: skip
    async with database.session() as session:
        entries = await session.scalar(select(func.count()).select_from(LedgerEntry))
    before = {room: await room.relay() for room in (normal, broke, locked, tripped)}
    assert before == {normal: [], broke: ["off"], locked: ["off"], tripped: ["off"]}

    night = local(23, 30)
    async with database.session() as session:
        assert await curfew.begin(session, ROOMS, night, "dorm-1:2026-11-23") == ["D1-101"]
        await session.commit()
    async with database.session() as session:  # the firing replayed: nothing twice
        assert await curfew.begin(session, ROOMS, night, "dorm-1:2026-11-23") == []
        await session.commit()
    assert await normal.relay() == ["off"]
    await normal.move(1000, local(1, day=24))  # a top-up in the night: the balance moves, the power does not
    await broke.move(2000, local(1, day=24))  # paid up: no longer cut for money, but it is night
    assert await normal.relay() == ["off"] and await broke.relay() == ["off"]
    assert (await broke.wallet()).state == "normal"
    await policy.sweep(local(0, 30, day=24))  # the overload trip ends inside the curfew: still off
    assert await tripped.relay() == ["off"]

    morning = local(6, 30, day=24)
    async with database.session() as session:
        restored = await curfew.end(session, ROOMS, morning, "dorm-1:2026-11-24")
        await session.commit()
    assert restored == ["D1-101", "D1-102", "D1-104"]  # the locked room stays off
    async with database.session() as session:
        assert await curfew.end(session, ROOMS, morning, "dorm-1:2026-11-24") == []
        await session.commit()
    assert await normal.relay() == ["off", "on"] and await broke.relay() == ["off", "on"]
    assert await locked.relay() == ["off"] and await tripped.relay() == ["off", "on"]
    async with database.session() as session:  # the curfew billed nothing: only the two top-ups were posted
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == (entries or 0) + 2
    assert not (await normal.wallet()).curfew
