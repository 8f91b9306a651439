"""Rooms with circuits (lights, sockets, AC) on SQLite and PostgreSQL: each circuit is billed on its own
register and tariff, circuits on one tariff share the room's free allowance (across a month boundary too),
a zero balance cuts the sockets and the AC but keeps the lights, the curfew cuts the sockets only, and the
inventory names every circuit mistake with its file and line. End to end on a simulated Modbus campus: the
room runs out, its sockets and AC relays open, its lights keep drawing."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from assembly import ProcessRole, assemble
from assembly.graph import Tuning
from houqin.accounts import NewAccount, add_account
from houqin.billing.curfew import Curfew
from houqin.billing.ledger import ensure_wallets, post
from houqin.billing.metering import RoomBilling
from houqin.config_file import ConfigError
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.settings import PaymentSettings, Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import DeviceCommand, LedgerEntry, Role, Wallet
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import PASSWORD, sign_in
from tests.conftest import in_process_api
from tests.test_room_policy import SHANGHAI, Room, local, policy_for

INVENTORY = """
site: {name: Circuits, timezone: Asia/Shanghai}
tariffs:
  - {id: dorm, price_fen_per_kwh: 60, free_kwh_per_month: 2}
  - {id: ac, price_fen_per_kwh: 80}
  - {id: lights-free, price_fen_per_kwh: 0}
gateways: [{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.3}]
models:
  - name: dorm-3ch-meter
    kind: electricity
    protocol: modbus
    description: a three-circuit dorm meter (one energy register per circuit)
    registers:
      - {field: power, table: input, address: 0, type: float32, unit: W}
      - {field: energy_lights, table: input, address: 2, type: float32, unit: kWh}
      - {field: energy_sockets, table: input, address: 4, type: float32, unit: kWh}
      - {field: energy_ac, table: input, address: 6, type: float32, unit: kWh}
  - name: relay-2ch
    kind: electricity
    protocol: modbus
    description: a two-channel relay module
    registers:
      - {field: sockets_closed, table: coil, address: 0, type: bool}
      - {field: ac_closed, table: coil, address: 1, type: bool}
    commands:
      sockets: {table: coil, address: 0, state_field: sockets_closed, actions: {on: true, off: false}}
      ac: {table: coil, address: 1, state_field: ac_closed, actions: {on: true, off: false}}
devices:
  - {id: r101-lights, model: eastron-sdm120, gateway: floor1, unit: 1, building: dorm-9, floor: 1, poll_interval: 0.5}
  - {id: r101-sockets, model: eastron-sdm120, gateway: floor1, unit: 2, building: dorm-9, floor: 1, poll_interval: 0.5}
  - {id: r101-ac, model: eastron-sdm120, gateway: floor1, unit: 3, building: dorm-9, floor: 1, poll_interval: 0.5}
  - {id: r101-sockets-relay, model: generic-relay, gateway: floor1, unit: 11, building: dorm-9, floor: 1,
     poll_interval: 0.5}
  - {id: r101-ac-relay, model: generic-relay, gateway: floor1, unit: 12, building: dorm-9, floor: 1, poll_interval: 0.5}
  - {id: r102-meter, model: dorm-3ch-meter, gateway: floor1, unit: 4, building: dorm-9, floor: 1}
  - {id: r102-relays, model: relay-2ch, gateway: floor1, unit: 13, building: dorm-9, floor: 1}
rooms:
  - id: R101
    building: dorm-9
    floor: 1
    meter: r101-sockets
    tariff: dorm
    circuits:
      - {id: lights, name: 照明, meter: r101-lights, tariff: lights-free, cut_on: []}
      - {id: sockets, name: 插座, relay: r101-sockets-relay}
      - {id: ac, name: 空调, meter: r101-ac, relay: r101-ac-relay, tariff: ac, cut_on: [balance, lock, trip]}
  - id: R102
    building: dorm-9
    floor: 1
    meter: r102-meter
    tariff: dorm
    circuits:
      - {id: lights, energy_field: energy_lights, tariff: lights-free, cut_on: []}
      - {id: sockets, energy_field: energy_sockets, relay: "r102-relays:sockets"}
      - {id: ac, energy_field: energy_ac, relay: "r102-relays:ac", cut_on: [balance]}
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    return load_inventory(tmp_path / "devices.yaml")


def reading(device: str, at: datetime, **fields: float) -> Reading:
    return Reading(device, at, dict(fields), {"kind": "electricity"})


async def entries(database: Database, room: str, kind: str) -> list[tuple[str | None, int, float]]:
    async with database.session() as session:
        rows = await session.execute(select(LedgerEntry.circuit, LedgerEntry.amount_fen, LedgerEntry.kwh)
                                     .where(LedgerEntry.room == room, LedgerEntry.kind == kind)
                                     .order_by(LedgerEntry.id))  # fmt: skip
        return [(circuit, amount, round(kwh or 0.0, 6)) for circuit, amount, kwh in rows.all()]


async def switched(database: Database, room: str) -> list[tuple[str, str, str]]:
    async with database.session() as session:
        rows = await session.execute(select(DeviceCommand.device, DeviceCommand.command, DeviceCommand.action)
                                     .where(DeviceCommand.key.like(f"billing:{room}:%"))
                                     .order_by(DeviceCommand.id))  # fmt: skip
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def test_each_circuit_is_priced_on_its_tariff_and_cut_for_its_causes(
    database: Database, inventory: Inventory
) -> None:
    await ensure_wallets(database, ["R101", "R102"])
    policy = policy_for(database, inventory)
    billing = RoomBilling(database, inventory, SHANGHAI, policy=policy)
    r101 = Room(database, policy, "R101")
    await r101.move(1000, local(9))
    start, later, last = local(10), local(11), local(12)
    await billing.consume([reading("r101-lights", start, energy=100.0), reading("r101-sockets", start, energy=50.0),
                           reading("r101-ac", start, energy=20.0)])  # fmt: skip
    # Lights 5 kWh (free circuit), sockets 3 kWh (2 of them free this month, 1 at 60 fen), AC 2 kWh at 80 fen.
    await billing.consume([reading("r101-lights", later, energy=105.0), reading("r101-sockets", later, energy=53.0),
                           reading("r101-ac", later, energy=22.0)])  # fmt: skip
    assert await entries(database, "R101", "allowance") == [("sockets", 0, 2.0)]
    assert await entries(database, "R101", "charge") == [("sockets", -60, 1.0), ("ac", -160, 2.0)]
    assert (await r101.wallet()).balance_fen == 1000 - 60 - 160

    # The balance runs out on the AC: the sockets and the AC go off, the lights (no relay, cut for nothing)
    # stay; the room's own meter register (``r101-sockets``) is billed once, as the sockets circuit.
    await billing.consume(
        [reading("r101-ac", last, energy=22.0 + 780 / 80), reading("r101-lights", last, energy=107.0)]
    )
    wallet = await r101.wallet()
    assert wallet.balance_fen == 0 and wallet.state == "cut_off"
    assert sorted(await switched(database, "R101")) == [("r101-ac-relay", "relay", "off"),
                                                        ("r101-sockets-relay", "relay", "off")]  # fmt: skip

    # The curfew takes the sockets only (off already, for money); a top-up inside it brings the AC back and
    # leaves the sockets off; the curfew's end brings the sockets back.
    curfew = Curfew(policy)
    async with database.session() as session:
        assert await curfew.begin(session, ["R101"], local(23, 30), "z:1") == []
        await session.commit()
    await r101.move(2000, local(23, 45))
    assert (await switched(database, "R101"))[2:] == [("r101-ac-relay", "relay", "on")]
    async with database.session() as session:
        assert await curfew.end(session, ["R101"], local(6, 30, day=24), "z:2") == ["R101"]
        await session.commit()
    assert (await switched(database, "R101"))[3:] == [("r101-sockets-relay", "relay", "on")]
    # Inside the next curfew the sockets go off and the AC keeps running.
    async with database.session() as session:
        assert await curfew.begin(session, ["R101"], local(23, 30, day=24), "z:3") == ["R101"]
        await session.commit()
    assert (await switched(database, "R101"))[4:] == [("r101-sockets-relay", "relay", "off")]


async def test_circuits_on_one_tariff_share_the_free_allowance(database: Database, inventory: Inventory) -> None:
    await ensure_wallets(database, ["R102"])
    policy = policy_for(database, inventory)
    billing = RoomBilling(database, inventory, SHANGHAI, policy=policy)
    await Room(database, policy, "R102").move(5000, local(9))

    def meter(at: datetime, lights: float, sockets: float, ac: float) -> Reading:
        return reading("r102-meter", at, energy_lights=lights, energy_sockets=sockets, energy_ac=ac, power=300.0)

    await billing.consume([meter(local(10), 10.0, 10.0, 10.0)])
    await billing.consume([meter(local(11), 11.0, 11.5, 10.0)])  # sockets 1.5 kWh: free
    await billing.consume([meter(local(12), 11.0, 11.5, 11.5)])  # AC 1.5 kWh: 0.5 free, 1 kWh at 60 fen
    assert await entries(database, "R102", "allowance") == [("sockets", 0, 1.5), ("ac", 0, 0.5)]
    assert await entries(database, "R102", "charge") == [("ac", -60, 1.0)]

    # Across the month: both circuits' windows straddle midnight of 1 December; the part before it may use
    # what is left of November's allowance (none), the part after starts December's 2 kWh — once for both.
    nov30, dec1 = local(23, day=30), datetime(2026, 12, 1, 1, tzinfo=SHANGHAI).astimezone(UTC)
    await billing.consume([meter(nov30, 11.0, 11.5, 11.5)])
    await billing.consume([meter(dec1, 11.0, 13.5, 11.5)])  # sockets 2 kWh, half of it after midnight: 1 free
    await billing.consume([meter(dec1 + timedelta(hours=1), 11.0, 13.5, 14.5)])  # AC 3 kWh in December: 1 free
    december = [kwh for circuit, _, kwh in (await entries(database, "R102", "allowance"))[2:]]
    assert sum(december) == pytest.approx(2.0)
    charges = await entries(database, "R102", "charge")
    assert [round(kwh, 3) for _, _, kwh in charges[1:]] == [1.0, 2.0]


async def test_a_room_with_circuits_runs_out_on_the_simulated_campus(tmp_path: Path) -> None:
    text = INVENTORY.replace("{id: dorm, price_fen_per_kwh: 60, free_kwh_per_month: 2}",
                             "{id: dorm, price_fen_per_kwh: 100000}")  # fmt: skip
    text = text.replace("{id: ac, price_fen_per_kwh: 80}", "{id: ac, price_fen_per_kwh: 100000}")
    (tmp_path / "devices.yaml").write_text(text, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.sqlite3'}")
    await upgrade_database(database)
    await ensure_wallets(database, ["R101", "R102"])
    async with database.session() as session:
        await post(session, "R101", "adjustment", 3, datetime.now(UTC), key="opening", cause="test")
        await post(session, "R102", "adjustment", 100_000_000, datetime.now(UTC), key="opening-2", cause="test")
        await session.commit()
    settings = Settings(data_dir=tmp_path, timezone="Asia/Shanghai", payments=PaymentSettings(sandbox=True))
    async with assemble(settings, inventory, roles={ProcessRole.COLLECT, ProcessRole.BILLING}, simulate=True,
                        database=database, tuning=Tuning(command_backoff_s=0.1)) as houqin:  # fmt: skip
        assert houqin.simulator is not None
        devices = houqin.simulator.devices
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        try:
            deadline = time.monotonic() + 40
            while (
                devices["r101-sockets-relay"].values["relay_closed"] or devices["r101-ac-relay"].values["relay_closed"]
            ):
                assert time.monotonic() < deadline, "the sockets and AC relays were not cut when the money ran out"
                await asyncio.sleep(0.1)
            while devices["r101-sockets"].values["power"] or devices["r101-ac"].values["power"]:
                assert time.monotonic() < deadline, "the sockets or the AC still draw power"
                await asyncio.sleep(0.1)
            assert devices["r101-lights"].values["power"] > 0  # the lights are not cut for money
            lights_before = float(devices["r101-lights"].values["energy"])
            await asyncio.sleep(1.5)
            assert float(devices["r101-lights"].values["energy"]) >= lights_before
        finally:
            stop.set()
            await running
    async with database.session() as session:
        wallet = await session.get(Wallet, "R101")
        assert wallet is not None and wallet.state == "cut_off"
    await database.close()


@pytest.mark.parametrize(
    ("original", "broken", "expected"),
    [
        (
            "meter: r101-lights, tariff: lights-free, cut_on: []}",
            "meter: r101-lights, tariff: lights-free}",
            "circuits[0].relay: circuit 'lights' is cut on balance, curfew, lock, trip but has no relay",
        ),
        ("meter: r101-ac, relay", "meter: r101-acx, relay", "circuits[2].meter: unknown device 'r101-acx'"),
        (
            "energy_field: energy_ac,",
            "energy_field: energy_acx,",
            "circuits[2].energy_field: meter 'r102-meter' (model 'dorm-3ch-meter') reads no number 'energy_acx' "
            "(did you mean 'energy_ac'?)",
        ),
        (
            '"r102-relays:ac"',
            '"r102-relays:acx"',
            "circuits[2].relay: device 'r102-relays' has no command 'acx'; it has ac, sockets",
        ),
        ("tariff: ac,", "tariff: acx,", "circuits[2].tariff: unknown tariff 'acx' (did you mean 'ac'?)"),
        (
            "energy_field: energy_sockets, relay",
            "energy_field: energy_lights, relay",
            "circuits[1].energy_field: r102-meter's 'energy_lights' is already billed for circuit R102/lights",
        ),
        (
            "meter: r102-meter\n",
            "meter: r102-meter\n    relay: r102-relays\n",
            "relay: a room with circuits is switched by its circuits' relays",
        ),
    ],
    ids=["no-relay", "meter", "field", "command", "tariff", "twice", "room-relay"],
)
def test_circuit_mistakes_name_the_line_and_field(tmp_path: Path, original: str, broken: str, expected: str) -> None:
    assert INVENTORY.count(original) == 1
    text = INVENTORY.replace(original, broken)
    path = tmp_path / "devices.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_inventory(path)
    message = str(raised.value)
    assert expected in message and f"{path}:" in message, message
    line = int(message.split(f"{path}:")[1].split(":")[0])
    changed = broken.splitlines()[-1].strip()
    assert line == next(number for number, row in enumerate(text.splitlines(), 1) if changed in row), message


def test_a_circuit_meter_is_tagged_with_its_room_and_circuit(inventory: Inventory) -> None:
    # The dorm dashboard sums a room's meters per device, so a room metered by circuit shows its whole use.
    tags = inventory.device_tags(inventory.devices["r101-ac"])
    assert tags["room"] == "R101" and tags["room_circuit"] == "ac"
    assert inventory.device_tags(inventory.devices["r101-sockets-relay"])["room"] == "R101"
    assert "room_circuit" not in inventory.device_tags(inventory.devices["r102-meter"])


async def test_a_room_s_usage_adds_up_its_circuits(
    database: Database, inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> None:
    async with database.session() as session:
        await add_account(session, NewAccount("chen", Role.STUDENT, PASSWORD, ("R101",)), inventory)
        await add_account(session, NewAccount("zhou", Role.STUDENT, PASSWORD, ("R102",)), inventory)
        await session.commit()
    day = (datetime.now(SHANGHAI) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    readings = []
    # Each hour: lights 0.1 kWh, sockets 0.2, AC 0.5 from 12:00; R102 counts the same on its three registers.
    # A window's use is the last reading before its end less the last before its start: the day is 23:00's
    # reading less the previous evening's.
    meters = ("r101-lights", "r101-sockets", "r101-ac", "r102-meter")
    tags = {device: inventory.device_tags(inventory.devices[device]) for device in meters}
    for hour in range(-1, 25):
        at = (day + timedelta(hours=hour)).astimezone(UTC)
        lights, sockets, ac = 0.1 * hour, 0.2 * hour, 0.5 * max(0, hour - 12)
        for device, kwh in (("r101-lights", lights), ("r101-sockets", sockets), ("r101-ac", ac)):
            readings.append(Reading(device, at, {"energy": 100.0 + kwh}, tags[device]))
        fields = {"energy_lights": 10 + lights, "energy_sockets": 10 + sockets, "energy_ac": 10 + ac}
        readings.append(Reading("r102-meter", at, fields, tags["r102-meter"]))
    await telemetry.consume(readings)
    async with in_process_api(Settings(data_dir=tmp_path), inventory, database, telemetry) as client:
        for room, student in (("R101", "chen"), ("R102", "zhou")):
            headers = await sign_in(client, student)
            params = {"period": "day", "date": day.date().isoformat()}
            usage = (await client.get(f"/api/v1/rooms/{room}/usage", params=params, headers=headers)).json()
            assert usage["total_kwh"] == pytest.approx(2.4 + 4.8 + 5.5), usage
            assert {c["id"]: c["total_kwh"] for c in usage["circuits"]} == pytest.approx(
                {"lights": 2.4, "sockets": 4.8, "ac": 5.5}
            )
            assert usage["windows"][13]["kwh"] == pytest.approx(0.8)  # 13:00-14:00: 0.1 + 0.2 + 0.5
        other = await client.get("/api/v1/rooms/R101/usage", headers=await sign_in(client, "zhou"))
        assert other.status_code in {403, 404}
