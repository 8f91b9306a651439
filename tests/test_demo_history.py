"""The demo's history, made at its first start: the simulated meters' readings for every hour of the past
weeks, ending where the live simulation starts (no step, no reset), the rooms' opening balance, daily
charges and top-ups in the ledger (wallet = its sum, no room cut, no command queued), the energy report
full of days; and made once."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assembly.cli.demo_campus import demo_accounts
from assembly.cli.demo_history import demo_history
from collectors.simulators.physics import starting_counter
from houqin.energy.report import energy_report
from houqin.inventory import Inventory
from houqin.settings import Settings
from houqin.store import Database
from houqin.store.tables import DeviceCommand, EntryKind, LedgerEntry, RepairOrder, Wallet
from houqin.telemetry import SeriesQuery
from houqin.telemetry.embedded_store import EmbeddedStore

DAYS = 14


async def test_history_runs_into_the_live_simulation(tmp_path: Path, demo_inventory: Inventory) -> None:
    settings = Settings(data_dir=tmp_path, timezone="Asia/Shanghai")
    now = datetime.now(UTC)
    await demo_accounts(settings, demo_inventory)  # the workers the past orders went to
    assert await demo_history(settings, demo_inventory, DAYS, now) > 0
    assert await demo_history(settings, demo_inventory, DAYS, now) == 0  # made once

    store = EmbeddedStore(tmp_path / "telemetry.sqlite3", settings.telemetry, timezone=settings.tz)
    await store.open()
    try:
        query = SeriesQuery("electricity", "d1-101-meter", "energy", now - timedelta(days=DAYS + 1), now,
                            timedelta(hours=1), "last")  # fmt: skip
        points = await store.series(query)
        assert len(points) == DAYS * 24
        values = [float(point.value) for point in points]
        assert all(later > earlier for earlier, later in itertools.pairwise(values))
        start = starting_counter("d1-101-meter", "electricity", True)
        assert start - 2.0 < values[-1] < start  # an hour's use short of where the live meter starts
        three_days_ago = (now - timedelta(days=3)).astimezone(settings.tz).date()
        report = await energy_report(store, demo_inventory, "day", three_days_ago, settings.tz, now=now)
        dorm = next(line for line in report.totals if line.building == "dorm-1" and line.code == "01000")
        assert dorm.total > 0 and dorm.gaps == 0
        items = {line.code: line for line in report.sub_items if line.building == "dorm-1"}
        share = items["01000:unaccounted"].total / dorm.total
        assert 0.05 < share < 0.5  # the common areas no room meter sees
    finally:
        await store.close()

    database = Database(settings.effective_database_url)
    try:
        async with database.session() as session:
            wallets = {w.room: w.balance_fen for w in (await session.execute(select(Wallet))).scalars()}
            totals = select(LedgerEntry.room, func.sum(LedgerEntry.amount_fen)).group_by(LedgerEntry.room)
            sums = {room: total for room, total in (await session.execute(totals)).all()}
            charges = await session.scalar(select(func.count()).where(LedgerEntry.kind == EntryKind.CHARGE))
            commands = await session.scalar(select(func.count()).select_from(DeviceCommand))
        assert wallets == sums and min(wallets.values()) > 0
        async with database.session() as session:
            orders = list((await session.execute(select(RepairOrder).order_by(RepairOrder.created_at))).scalars())
        assert (
            len(orders) == 8 and {o.status for o in orders[:-1]} == {"resolved"} and orders[-1].status == "in_progress"
        )
        assert all(now - timedelta(days=DAYS) < o.created_at < now for o in orders)
        assert charges == pytest.approx(len(demo_inventory.rooms) * (DAYS - 1), rel=0.1)
        assert commands == 0
    finally:
        await database.close()
