"""Billing from the meter, the cases a random walk rarely reaches, on SQLite and PostgreSQL: a window over
a month boundary uses each month's free allowance for its own part; an impossible jump is not charged and
opens a repair order for the meter, which hears when billing is normal again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from houqin.billing.ledger import ensure_wallets
from houqin.billing.metering import JUMP_RULE, RoomBilling
from houqin.billing.statement import month_statement
from houqin.inventory import load_inventory
from houqin.readings import Reading
from houqin.repairs.faults import FaultBook, OrderChange
from houqin.repairs.orders import RepairDesk
from houqin.settings import RepairSettings
from houqin.store import Database, upgrade_database
from houqin.store.tables import BillingEvent, Fault, LedgerEntry, MeterBilling, RepairOrder
from tests.conftest import create_pg_database
from tests.servers import Postgres

TZ = ZoneInfo("Asia/Shanghai")
INVENTORY = """
site: {name: Metering test}
tariffs: [{id: flat, price_fen_per_kwh: 100, free_kwh_per_month: 10}]
gateways: [{id: gw, type: rtu_over_tcp, host: 127.0.0.1, port: 1502}]
devices:
  - {id: m1, model: eastron-sdm120, gateway: gw, unit: 1, building: B, floor: 2, room: R1}
teams: [{id: electrical, name: Electrical, categories: [meter]}]
rooms:
  - {id: R1, building: B, floor: 2, meter: m1, tariff: flat}
"""


def local(month: int, day: int, hour: int) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=TZ).astimezone(UTC)


async def test_a_window_over_the_month_boundary_splits_the_allowance(database: Database, tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    await ensure_wallets(database, ["R1"])
    billing = RoomBilling(database, inventory, TZ)

    async def read(at: datetime, kwh: float) -> None:
        await billing.consume([Reading("m1", at, {"energy": kwh})])

    await read(local(10, 31, 12), 100.0)
    await read(local(10, 31, 22), 109.0)  # 9 of October's 10 free kWh used
    await read(local(11, 1, 2), 113.0)  # 4 kWh over 22:00..02:00: 2 before midnight, 2 after
    async with database.session() as session:
        room = inventory.rooms["R1"]
        october = await month_statement(session, room, inventory.tariffs["flat"], "2026-10", TZ)
        november = await month_statement(session, room, inventory.tariffs["flat"], "2026-11", TZ)
        charged = (await session.execute(select(LedgerEntry).where(LedgerEntry.kind == "charge"))).scalars().all()
    assert october.kwh_free == 10.0 and october.free_kwh_left == 0.0
    # The window after October's allowance ran out: 1 kWh charged; November's part is free.
    assert november.kwh_free == 2.0 and november.free_kwh_left == 8.0
    assert [(entry.amount_fen, round(entry.kwh or 0, 3)) for entry in charged] == [(-100, 1.0)]


async def test_a_jump_opens_a_repair_order_and_is_not_charged(database: Database, tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    await ensure_wallets(database, ["R1"])
    changes: list[OrderChange] = []

    async def heard(change: OrderChange) -> None:
        changes.append(change)

    faults = FaultBook(database, RepairDesk(inventory, RepairSettings(), TZ))
    billing = RoomBilling(database, inventory, TZ, max_room_kw=10, faults=faults, on_order_change=heard)
    t0 = local(11, 23, 8)
    await billing.consume([Reading("m1", t0, {"energy": 100.0})])
    await billing.consume([Reading("m1", t0 + timedelta(minutes=10), {"energy": 600.0})])  # 500 kWh in 10 min
    await billing.consume([Reading("m1", t0 + timedelta(minutes=20), {"energy": 9000.0})])  # again: same fault
    async with database.session() as session:
        fault = (await session.execute(select(Fault).where(Fault.rule_id == JUMP_RULE))).scalar_one()
        order = await session.get(RepairOrder, fault.repair_order_id)
        charges = (await session.execute(select(LedgerEntry).where(LedgerEntry.kind == "charge"))).scalars().all()
    assert fault.state == "active" and fault.device == "m1"
    assert order is not None and order.category == "meter" and order.room == "R1" and "jumped" in order.title
    assert [change.change for change in changes] == ["opened"] and charges == []
    # A restarted houqin finds the open fault, and a normal window clears it (the order stays for a person).
    billing = RoomBilling(database, inventory, TZ, max_room_kw=10, faults=faults, on_order_change=heard)
    await billing.consume([Reading("m1", t0 + timedelta(minutes=30), {"energy": 9000.5})])
    async with database.session() as session:
        cleared = await session.get(Fault, fault.id)
        charges = (await session.execute(select(LedgerEntry).where(LedgerEntry.kind == "charge"))).scalars().all()
    assert cleared is not None and cleared.state == "cleared"
    assert len(await faults.open_faults()) == 0 and sum(entry.kwh or 0 for entry in charges) == 0.0


async def test_a_jump_in_seconds_says_seconds(database: Database, tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    await ensure_wallets(database, ["R1"])
    billing = RoomBilling(database, inventory, TZ, max_room_kw=10)
    t0 = local(11, 23, 8)
    await billing.consume([Reading("m1", t0, {"energy": 100.0})])
    await billing.consume([Reading("m1", t0 + timedelta(seconds=2), {"energy": 100.25})])  # 450 kW for 2 s
    await billing.consume([Reading("m1", t0 + timedelta(minutes=92), {"energy": 900.0})])
    async with database.session() as session:
        notes = (await session.execute(select(BillingEvent.note).order_by(BillingEvent.id))).scalars().all()
    assert notes[-2:] == ["0.250 kWh in 2 s is more than 10 kW could draw",
                          "799.750 kWh in 1.5 h is more than 10 kW could draw"]  # fmt: skip


async def test_a_meter_another_process_started_billing_meanwhile_is_billed_once(
    postgres: Postgres, tmp_path: Path
) -> None:
    """Two processes billing one meter at once (a gateway taken over mid-batch): this batch's transaction
    finds the meter's billing row missing and creates it while the other process creates it too. The loser
    of that race is told (a unique violation), bills its charges again one at a time — now on the other's
    row — and nothing is charged twice or lost."""
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    url = await create_pg_database(postgres)
    database, other = Database(url), Database(url)
    try:
        await upgrade_database(database)
        await ensure_wallets(database, ["R1"])
        billing = RoomBilling(database, inventory, TZ)
        t0 = local(11, 23, 8)
        async with other.session() as session:
            session.add(MeterBilling(meter="m1", room="R1", last_ts=t0, last_kwh=100.0, carry_micro_fen=0,
                                     month="2026-11"))  # fmt: skip
            await session.flush()  # the other process's first reading, not committed yet
            later = t0 + timedelta(hours=2)
            readings = [Reading("m1", t0, {"energy": 100.0}), Reading("m1", later, {"energy": 112.0})]
            batch = asyncio.create_task(billing.consume(readings))
            await asyncio.sleep(1.0)
            assert not batch.done(), "the batch should wait on the other process's row"
            await session.commit()
        await batch
        async with database.session() as session:
            entries = (await session.execute(select(LedgerEntry.kind, LedgerEntry.amount_fen, LedgerEntry.kwh)
                                             .order_by(LedgerEntry.id))).all()  # fmt: skip
            state = await session.get(MeterBilling, "m1")
            firsts = await session.scalar(select(func.count()).select_from(BillingEvent))
        # 12 kWh from the other process's start: 10 free this month, 2 at 100 fen — once.
        assert [(kind, amount, round(kwh, 3)) for kind, amount, kwh in entries] == [("allowance", 0, 10.0),
                                                                                   ("charge", -200, 2.0)]  # fmt: skip
        assert state is not None and state.last_kwh == 112.0
        assert firsts == 0  # the row is the other process's; this one's "billing starts" was rolled back
    finally:
        await database.close()
        await other.close()
