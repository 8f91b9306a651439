"""The room policy on SQLite and PostgreSQL: low-balance notices once per crossing, cut-off deferred to
the end of the protected window (and dropped by a top-up), overload trips restored after their time and
never overriding a cut for money; the room API shows it all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from houqin.billing.credits import credit
from houqin.billing.ledger import ensure_wallets
from houqin.billing.overload import OverloadGuard
from houqin.billing.policy import PowerPolicy
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.readings import Reading
from houqin.settings import BillingSettings
from houqin.store import Database
from houqin.store.tables import DeviceCommand, RoomNotice, Wallet
from tests.api_client import sign_in

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


class Room:
    def __init__(self, database: Database, policy: PowerPolicy, room: str) -> None:
        self.database, self.policy, self.room = database, policy, room
        self.moves = 0

    async def move(self, amount: int, at: datetime) -> None:
        self.moves += 1
        kind = "topup" if amount > 0 else "adjustment"
        await credit(self.database, self.policy, self.room, kind, amount, at, key=f"{self.room}:{self.moves}",
                     cause="test")  # fmt: skip

    async def wallet(self) -> Wallet:
        async with self.database.session() as session:
            found = await session.get(Wallet, self.room)
            assert found is not None
            return found

    async def notices(self) -> list[str]:
        async with self.database.session() as session:
            rows = await session.execute(select(RoomNotice.kind).where(RoomNotice.room == self.room)
                                         .order_by(RoomNotice.id))  # fmt: skip
            return list(rows.scalars())

    async def relay(self) -> list[str]:
        async with self.database.session() as session:
            ours = DeviceCommand.key.like(f"billing:{self.room}:%")
            rows = await session.execute(select(DeviceCommand.action).where(ours).order_by(DeviceCommand.id))
            return list(rows.scalars())


def policy_for(database: Database, inventory: Inventory, **billing: object) -> PowerPolicy:
    settings = BillingSettings(**billing)  # type: ignore[arg-type]
    return PowerPolicy(inventory, CommandQueue(database, inventory), settings, SHANGHAI, database)


async def test_low_balance_is_told_once_per_crossing(database: Database, demo_inventory: Inventory) -> None:
    await ensure_wallets(database, ["D1-101"])
    room = Room(database, policy_for(database, demo_inventory, low_balance_fen=[1000, 300]), "D1-101")
    at = local(12)
    await room.move(2000, at)
    for amount in (-900, -200, +50, -100):  # 1100, 900 (≤ 10 yuan), 950, 850
        await room.move(amount, at)
    assert await room.notices() == ["low_balance"]
    assert (await room.wallet()).state == "low"
    await room.move(+400, at)  # 1250: above again, re-armed
    assert (await room.wallet()).state == "normal"
    await room.move(-300, at)  # 950: a new crossing
    await room.move(-700, at)  # 250: the second threshold
    assert await room.notices() == ["low_balance", "low_balance", "low_balance"]
    await room.move(-250, at)  # 0: cut off, not another low warning
    assert await room.notices() == ["low_balance", "low_balance", "low_balance", "cut_off"]
    assert (await room.wallet()).state == "cut_off" and await room.relay() == ["off"]
    await room.move(+100, at)  # 100: power back, still low
    wallet = await room.wallet()
    assert wallet.state == "low" and await room.relay() == ["off", "on"]
    assert (await room.notices())[-1] == "restored"


async def test_no_cut_inside_the_protected_window(database: Database, demo_inventory: Inventory) -> None:
    await ensure_wallets(database, ["D1-101", "D1-102"])
    policy = policy_for(database, demo_inventory, protected_window="22:00-07:00", low_balance_fen=[])
    night_owl, early_payer = Room(database, policy, "D1-101"), Room(database, policy, "D1-102")
    for room in (night_owl, early_payer):
        await room.move(500, local(21))
        await room.move(-500, local(23, 30))  # runs out at night
    assert await night_owl.relay() == [] and (await night_owl.wallet()).cut_deferred
    assert await night_owl.notices() == ["cut_deferred"]
    await policy.sweep(local(3))
    assert await night_owl.relay() == []
    await early_payer.move(1000, local(6, 30))  # topped up before the window ends: never cut
    assert not (await early_payer.wallet()).cut_deferred
    await policy.sweep(local(7, 0, day=24))
    assert await night_owl.relay() == ["off"] and (await night_owl.wallet()).state == "cut_off"
    assert await early_payer.relay() == [] and (await early_payer.wallet()).state == "normal"
    await policy.sweep(local(7, 1, day=24))  # a second sweep (or another process) cuts nothing more
    assert await night_owl.relay() == ["off"]
    await night_owl.move(300, local(8, day=24))
    assert await night_owl.relay() == ["off", "on"]


async def test_an_overloaded_room_trips_and_gets_power_back(database: Database, demo_inventory: Inventory) -> None:
    await ensure_wallets(database, ["D1-101"])
    billing = BillingSettings(power_limit_w=1500, trip_after_s=10, trip_restore_min=5)
    policy = PowerPolicy(demo_inventory, CommandQueue(database, demo_inventory), billing, SHANGHAI, database)
    guard = OverloadGuard(demo_inventory, policy, billing)
    room = Room(database, policy, "D1-101")
    await room.move(5000, local(12))
    meter = demo_inventory.rooms["D1-101"].meter

    def power(watts: float, seconds: float) -> Reading:
        return Reading(meter, local(19) + timedelta(seconds=seconds), {"power": watts}, {"kind": "electricity"})

    await guard.consume([power(2500, 0), power(2500, 5), power(900, 8), power(2500, 9), power(2500, 15)])
    assert await room.relay() == []  # never over the limit for 10 s in a row
    await guard.consume([power(2500, 19), power(2600, 20)])
    assert await room.relay() == ["off"]
    wallet = await room.wallet()
    assert wallet.trips == 1 and wallet.tripped_until == local(19) + timedelta(seconds=19, minutes=5)
    await guard.consume([power(2600, 25), power(2600, 40)])  # late readings from before the cut: no second trip
    assert (await room.wallet()).trips == 1

    await policy.sweep(local(19, 4))
    assert await room.relay() == ["off"]
    await policy.sweep(local(19, 6))
    assert await room.relay() == ["off", "on"] and (await room.wallet()).tripped_until is None

    # Tripped, then the money runs out and comes back during the trip: the relay stays off until the
    # trip ends; the end of a trip does not switch a room that is cut for money back on.
    await guard.consume([power(3000, 600), power(3000, 611)])
    assert await room.relay() == ["off", "on", "off"]
    await room.move(-5000, local(19, 11))
    await room.move(+1000, local(19, 12))
    # The cut for money finds the relay off for the trip already (nothing sent); no restore while tripped.
    assert await room.relay() == ["off", "on", "off"]
    await policy.sweep(local(19, 20))
    assert await room.relay() == ["off", "on", "off", "on"]
    assert (await room.wallet()).trips == 2
    kinds = await room.notices()
    assert kinds.count("tripped") == 2 and kinds.count("trip_restored") == 2


async def test_the_room_api_shows_the_state_notices_and_a_statement(client: httpx.AsyncClient, database: Database,
                                                                    demo_inventory: Inventory) -> None:  # fmt: skip
    alice, bob = await sign_in(client, "alice"), await sign_in(client, "bob")
    policy = client._transport.app.state.context.services.power_policy  # type: ignore[attr-defined]
    room = Room(database, policy, "D1-101")
    now = datetime.now(UTC)
    await room.move(1200, now)
    await room.move(-1000, now)
    detail = (await client.get("/api/v1/rooms/D1-101", headers=alice)).json()
    assert detail["building"] == "dorm-1" and detail["wallet"]["balance_fen"] == 200
    assert detail["wallet"]["state"] == "low"
    notices = (await client.get("/api/v1/rooms/D1-101/notices", headers=alice)).json()
    # 10 and 3 yuan crossed in one move: one notice, naming the lower.
    assert [(n["kind"], "3.00 yuan" in n["message"]) for n in notices] == [("low_balance", True)]
    assert (await client.get("/api/v1/rooms/D1-101/notices", headers=bob)).status_code == 403
    month = now.astimezone(SHANGHAI).strftime("%Y-%m")
    statement = (await client.get(f"/api/v1/rooms/D1-101/statement?month={month}", headers=alice)).json()
    assert statement["opening_fen"] == 0 and statement["closing_fen"] == 200
    assert sum(day["topups_fen"] for day in statement["days"]) == 1200
    csv = await client.get(f"/api/v1/rooms/D1-101/statement?month={month}&format=csv", headers=alice)
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("day,kwh_charged") and lines[-1].startswith("total,") and lines[-1].endswith(",200")
    bad = await client.get("/api/v1/rooms/D1-101/statement?month=2026-13", headers=alice)
    assert bad.status_code == 422


async def test_an_overdraft_keeps_power_until_its_limit(database: Database, demo_inventory: Inventory) -> None:
    """``cutoff_fen`` below zero is an overdraft: the room runs into debt down to it before the cut, and
    four warning levels are told one by one on the way down."""
    await ensure_wallets(database, ["D1-105"])
    policy = policy_for(database, demo_inventory, cutoff_fen=-500, low_balance_fen=[2000, 1000, 500, 0])
    room = Room(database, policy, "D1-105")
    at = local(12)
    await room.move(2500, at)
    for amount in (-600, -1000, -600, -400, -300):  # 1900, 900, 300, -100, -400
        await room.move(amount, at)
    assert await room.relay() == [] and (await room.wallet()).state == "low"
    assert await room.notices() == ["low_balance"] * 4
    await room.move(-100, at)  # -500: the overdraft's limit
    assert await room.relay() == ["off"] and (await room.wallet()).state == "cut_off"
    await room.move(400, at)  # -100: still in debt, still off (restore above 0)
    assert await room.relay() == ["off"]
    await room.move(200, at)
    assert await room.relay() == ["off", "on"]


def test_even_shares_add_up_exactly() -> None:
    from houqin.billing.shares import even_shares

    shares = even_shares(4, 10.003, 1001, ["zhou", "alice"])
    assert [(s.bed, s.student) for s in shares] == [(1, "alice"), (2, "zhou"), (3, None), (4, None)]
    assert sum(s.cost_fen for s in shares) == 1001 and [s.cost_fen for s in shares] == [251, 250, 250, 250]
    assert round(sum(s.kwh for s in shares), 3) == 10.003
    assert len(even_shares(2, 1.0, 100, ["a", "b", "c"])) == 3  # more students registered than beds


async def test_roommates_see_the_month_split_by_bed(client: httpx.AsyncClient, database: Database,
                                                    demo_inventory: Inventory) -> None:  # fmt: skip
    from houqin.billing.ledger import post

    alice, bob = await sign_in(client, "alice"), await sign_in(client, "bob")
    now = datetime.now(UTC)
    await ensure_wallets(database, ["D1-101"])
    async with database.session() as session:
        await post(session, "D1-101", "topup", 5000, now, key="t1", cause="test")
        await post(session, "D1-101", "charge", -1234, now, key="c1", cause="meter", kwh=22.041)
        await session.commit()
    month = now.astimezone(SHANGHAI).strftime("%Y-%m")
    answer = await client.get(f"/api/v1/rooms/D1-101/shares?month={month}", headers=alice)
    assert answer.status_code == 200, answer.text
    split = answer.json()
    assert split["cost_fen"] == 1234 and split["kwh"] == 22.041 and len(split["shares"]) == 4  # four beds
    assert sum(s["cost_fen"] for s in split["shares"]) == 1234
    assert round(sum(s["kwh"] for s in split["shares"]), 3) == 22.041
    assert split["shares"][0]["student"] == "alice" and split["shares"][1]["student"] is None
    assert (await client.get(f"/api/v1/rooms/D1-101/shares?month={month}", headers=bob)).status_code == 403
    assert (await client.get("/api/v1/rooms/D1-101/shares?month=2026-13", headers=alice)).status_code == 422
