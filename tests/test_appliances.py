"""High-power appliances (恶性负载) in the power policy, on SQLite and PostgreSQL with a driven clock: a
kettle trips the room at once and power returns after the policy's minutes; the third trip within the
hour locks the room until staff unlock it (the API, with the student's view of it); a registered water
dispenser and a hair dryer (not resistive) never trip; a room exempt for a medical device is never
tripped by signature. Then the same on the simulated campus, through real Modbus, end to end."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from assembly import ProcessRole, assemble
from assembly.graph import Tuning
from houqin.billing.appliances import ApplianceGuard
from houqin.billing.ledger import ensure_wallets
from houqin.commands import CommandQueue
from houqin.inventory import Inventory, load_inventory
from houqin.inventory.power import AppliancePolicy
from houqin.readings import Reading
from houqin.settings import Settings
from houqin.store import Database, upgrade_database
from tests.api_client import sign_in
from tests.test_inventory import errors_of, write
from tests.test_room_policy import SHANGHAI, Room, local, policy_for

ROOM = "D1-101"


def readings(meter: str, start: datetime, samples: list[tuple[float, float, float | None]]) -> list[Reading]:
    """(seconds after ``start``, W, power factor or None) as a meter's readings."""
    out = []
    for seconds, watts, factor in samples:
        fields: dict[str, float | bool | str] = {"power": watts}
        if factor is not None:
            fields["power_factor"] = factor
        out.append(Reading(meter, start + timedelta(seconds=seconds), fields, {"kind": "electricity"}))
    return out


def with_policies(inventory: Inventory, *policies: AppliancePolicy) -> Inventory:
    from dataclasses import replace

    return replace(inventory, appliance_policies={policy.id: policy for policy in policies})


async def test_a_kettle_trips_the_room_returns_and_the_third_trip_locks_it(
    database: Database, demo_inventory: Inventory, client: httpx.AsyncClient
) -> None:
    await ensure_wallets(database, [ROOM])
    policy = policy_for(database, demo_inventory)
    guard = ApplianceGuard(demo_inventory, policy)
    room = Room(database, policy, ROOM)
    meter = demo_inventory.rooms[ROOM].meter
    await room.move(5000, local(12))
    start = local(20)
    # 120 W of laptop and lamp, then a 1.8 kW kettle (power factor 1.0): the default policy holds 10 s.
    await guard.consume(readings(meter, start, [(0, 120, 0.92), (5, 118, 0.92), (10, 1925, 0.99), (15, 1930, 0.99)]))
    assert await room.relay() == []  # 5 s of it: not yet
    await guard.consume(readings(meter, start, [(20, 1928, 0.99)]))
    assert await room.relay() == ["off"]
    wallet = await room.wallet()
    assert wallet.tripped_until == start + timedelta(seconds=20, minutes=10) and not wallet.locked
    assert (await room.notices())[-1] == "appliance"
    await policy.sweep(start + timedelta(minutes=9))
    assert await room.relay() == ["off"]
    await policy.sweep(start + timedelta(minutes=11))
    assert await room.relay() == ["off", "on"]
    # The kettle is still plugged in: power returns, it trips again; the third time within the hour locks.
    for trip, minute in ((2, 12), (3, 24)):
        at = start + timedelta(minutes=minute)
        await guard.consume(readings(meter, at, [(0, 0, None), (3, 1900, 1.0), (9, 1905, 1.0), (14, 1902, 1.0)]))
        assert (await room.relay()).count("off") == trip
        if trip == 2:
            await policy.sweep(at + timedelta(minutes=11))
    wallet = await room.wallet()
    assert wallet.locked and wallet.tripped_until is None and (await room.notices())[-1] == "locked"
    await policy.sweep(start + timedelta(hours=3))
    await room.move(2000, start + timedelta(hours=3))  # neither time nor money brings a locked room back
    assert await room.relay() == ["off", "on", "off", "on", "off"]

    # The student sees why; staff see the locked room and unlock it with a reason; bob sees nothing of it.
    alice, bob, li = [await sign_in(client, name) for name in ("alice", "bob", "li")]
    events = (await client.get(f"/api/v1/rooms/{ROOM}/power-events", headers=alice)).json()
    assert [e["kind"] for e in events] == ["locked", "appliance_trip", "appliance_trip", "appliance_trip"]
    assert events[-1]["step_w"] == pytest.approx(1928 - 118) and events[-1]["restore_at"] is not None
    assert events[1]["restore_at"] is None  # the locking trip: staff restore it
    assert (await client.get(f"/api/v1/rooms/{ROOM}/power-events", headers=bob)).status_code == 403
    assert (await client.get(f"/api/v1/rooms/{ROOM}", headers=alice)).json()["wallet"]["state"] == "locked"
    assert (await client.get("/api/v1/rooms/locked", headers=alice)).status_code == 403
    locked = (await client.get("/api/v1/rooms/locked", headers=li)).json()
    assert [(r["room"], r["building"]) for r in locked] == [(ROOM, "dorm-1")]
    assert "3 appliance trips within 60 min" in locked[0]["reason"]
    assert (await client.post(f"/api/v1/rooms/{ROOM}/unlock", json={"reason": "ok"}, headers=alice)).status_code == 403
    assert (await client.post(f"/api/v1/rooms/{ROOM}/unlock", json={"reason": ""}, headers=li)).status_code == 422
    unlocked = await client.post(f"/api/v1/rooms/{ROOM}/unlock", json={"reason": "kettle taken away"}, headers=li)
    assert unlocked.status_code == 200 and unlocked.json()["state"] == "normal"
    assert await room.relay() == ["off", "on", "off", "on", "off", "on"]
    again = await client.post(f"/api/v1/rooms/{ROOM}/unlock", json={"reason": "twice"}, headers=li)
    assert again.status_code == 409
    events = (await client.get(f"/api/v1/rooms/{ROOM}/power-events", headers=alice)).json()
    assert events[0]["kind"] == "unlocked" and events[0]["by"] == "li" and events[0]["reason"] == "kettle taken away"


async def test_allowed_and_non_resistive_loads_and_exempt_rooms_never_trip(
    database: Database, demo_inventory: Inventory
) -> None:
    dispenser = AppliancePolicy(id="dorm-1", buildings=["dorm-1"], allow=[{"name": "water dispenser",  # type: ignore[list-item]
                                                                           "from_w": 350, "to_w": 700}])  # fmt: skip
    medical = AppliancePolicy(id="oxygen", rooms=["D1-102"], exempt=True, reason="oxygen concentrator")
    inventory = with_policies(demo_inventory, dispenser, medical)
    assert inventory.appliance_policy(inventory.rooms["D1-102"]).id == "oxygen"
    assert inventory.appliance_policy(inventory.rooms["D1-103"]).id == "dorm-1"
    assert inventory.appliance_policy(inventory.rooms["D2-101"]).id == "campus-default"
    await ensure_wallets(database, ["D1-101", "D1-102", "D1-103"])
    policy = policy_for(database, inventory)
    guard = ApplianceGuard(inventory, policy)
    start = local(21)
    meter = inventory.rooms["D1-103"].meter
    # The dispenser heating (+520 W, resistive) is under the step anyway; a stronger one in its band too.
    big = AppliancePolicy(id="d", buildings=["dorm-1"], step_w=400, allow=dispenser.allow)
    guard2 = ApplianceGuard(with_policies(demo_inventory, big), policy)
    await guard2.consume(readings(meter, start, [(0, 80, None), (5, 600, 1.0), (20, 600, 1.0), (40, 600, 1.0)]))
    assert guard2.allowed == 1 and guard2.trips == 0
    # A 1.2 kW hair dryer at power factor 0.8 on a meter that reports it: not a kettle.
    await guard.consume(readings(meter, start + timedelta(minutes=5),
                                 [(0, 100, 0.9), (4, 1300, 0.82), (20, 1300, 0.82), (40, 1310, 0.82)]))  # fmt: skip
    assert guard.trips == 0
    # The exempt room: an oxygen concentrator's heater at 1 kW resistive, for minutes: never tripped.
    oxygen = inventory.rooms["D1-102"].meter
    await guard.consume(readings(oxygen, start, [(0, 50, None), (5, 1100, 1.0), (60, 1100, 1.0), (300, 1100, 1.0)]))
    assert guard.trips == 0 and "D1-102" not in {r.id for r in guard.rooms.values()}
    assert await Room(database, policy, "D1-103").relay() == []
    assert await Room(database, policy, "D1-102").relay() == []


APPLIANCE_SITE = """\
site: {name: Appliance checks}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
gateways: [{id: g, type: rtu_over_tcp, host: 10.0.0.1, port: 4196}]
devices:
  - {id: m1, model: eastron-sdm120, gateway: g, unit: 1, building: dorm-9, room: R1}
rooms:
  - {id: R1, building: dorm-9, floor: 1, meter: m1, tariff: flat}
appliance_policies:
  - {id: a, buildings: [dorm-9], allow: [{name: dispenser, from_w: 300, to_w: 700}]}
  - {id: b, buildings: [dorm-9]}
  - {id: c, rooms: [R9]}
  - {id: d, rooms: [R1], exempt: true}
  - {id: e, step_w: -5}
  - {id: f, allow: [{name: dispenser, from_w: 300, to_w: 700}, {name: fridge, from_w: 600, to_w: 900}]}
  - {id: g, allow: [{name: odd, from_w: 500, to_w: 400}]}
"""


def test_appliance_policy_mistakes_are_named_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, APPLIANCE_SITE)
    errors = errors_of(path)
    text = "\n".join(errors)
    guarded = "building 'dorm-9' is already guarded by appliance policy 'a'"
    assert f"{path}:10: appliance_policies[1].buildings[0]: {guarded}" in text, text
    assert f"{path}:11: appliance_policies[2].rooms[0]: unknown room 'R9'" in text
    assert f"{path}:12: appliance_policies[3].reason: an exempt room needs its reason" in text
    assert f"{path}:13: appliance_policies[4].step_w: must be between 100 and 100000, got -5" in text
    assert f"{path}:14: appliance_policies[5].allow: 'dispenser' (300-700 W) and 'fridge' (600-900 W) overlap" in text
    assert f"{path}:15: appliance_policies[6].allow[0]: from_w 500 must be below to_w 400" in text
    assert len(errors) == 6, text


async def test_a_kettle_on_the_simulated_campus_trips_its_room_through_modbus(tmp_path: Path) -> None:
    """The campus's kettle (the illegal_appliance fault: 1.8 kW, resistive) on a Modbus meter polled
    every 0.5 s: the relay module is switched off and confirmed within the hold time plus a poll or two."""
    text = (
        "site: {name: Appliance campus, timezone: Asia/Shanghai}\n"
        "tariffs: [{id: flat, price_fen_per_kwh: 56}]\n"
        "gateways: [{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.3}]\n"
        "devices:\n"
        "  - {id: r1-meter, model: eastron-sdm120, gateway: floor1, unit: 1, building: dorm-9, floor: 1, room: R1,"
        " poll_interval: 0.5}\n"
        "  - {id: r1-relay, model: generic-relay, gateway: floor1, unit: 11, building: dorm-9, floor: 1, room: R1,"
        " poll_interval: 0.5}\n"
        "rooms: [{id: R1, building: dorm-9, floor: 1, meter: r1-meter, relay: r1-relay, tariff: flat}]\n"
        "appliance_policies: [{id: dorms, hold_s: 2, restore_min: 10}]\n"
    )
    (tmp_path / "devices.yaml").write_text(text, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.sqlite3'}")
    await upgrade_database(database)
    await ensure_wallets(database, ["R1"])
    settings = Settings(data_dir=tmp_path, timezone=SHANGHAI.key)
    roles = {ProcessRole.COLLECT, ProcessRole.BILLING}
    async with assemble(settings, inventory, roles=roles, simulate=True, database=database,
                        tuning=Tuning(command_backoff_s=0.1)) as houqin:  # fmt: skip
        assert houqin.simulator is not None
        await Room(database, houqin.power_policy, "R1").move(5000, datetime.now(UTC))
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        try:
            relay = houqin.simulator.devices["r1-relay"]
            await asyncio.sleep(3)  # a minute's baseline is not needed: the lowest reading so far is the base
            houqin.simulator.inject("r1-meter", "illegal_appliance")
            started = time.monotonic()
            while relay.values["relay_closed"]:
                assert time.monotonic() - started < 8, "the kettle did not trip the room"
                await asyncio.sleep(0.05)
            assert time.monotonic() - started < 2 + 2.5  # hold 2 s, a poll, the command and its read-back
            commands = CommandQueue(database, inventory)
            deadline = time.monotonic() + 5
            while (await commands.recent("r1-relay"))[0].state != "confirmed":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
            wallet = await Room(database, houqin.power_policy, "R1").wallet()
            assert wallet.tripped_until is not None and not wallet.locked
        finally:
            stop.set()
            await running
    await database.close()


async def test_staff_lock_a_room_and_unlock_it(client: httpx.AsyncClient, database: Database) -> None:
    alice, li = await sign_in(client, "alice"), await sign_in(client, "li")
    policy = client._transport.app.state.context.services.power_policy  # type: ignore[attr-defined]
    room = Room(database, policy, ROOM)
    await room.move(3000, datetime.now(UTC))
    assert (await client.post(f"/api/v1/rooms/{ROOM}/lock", json={"reason": "no"}, headers=alice)).status_code == 403
    assert (await client.post("/api/v1/rooms/X-1/lock", json={"reason": "no"}, headers=li)).status_code == 404
    locked = await client.post(f"/api/v1/rooms/{ROOM}/lock", json={"reason": "电热毯"}, headers=li)
    assert locked.status_code == 200 and locked.json()["state"] == "locked" and locked.json()["locked"] is True
    assert (await client.post(f"/api/v1/rooms/{ROOM}/lock", json={"reason": "again"}, headers=li)).status_code == 409
    await room.move(1000, datetime.now(UTC))  # money does not unlock it
    assert await room.relay() == ["off"]
    event = (await client.get(f"/api/v1/rooms/{ROOM}/power-events?limit=1", headers=alice)).json()[0]
    assert (event["kind"], event["by"], event["reason"]) == ("locked", "li", "电热毯")
    unlocked = await client.post(f"/api/v1/rooms/{ROOM}/unlock", json={"reason": "已没收"}, headers=li)
    assert unlocked.json()["state"] == "normal" and await room.relay() == ["off", "on"]
