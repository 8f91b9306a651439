"""The demo's past: at its first start, weeks of the simulated campus's readings in the embedded store, and
the rooms' money over them (the opening balance at their start, a day's charge at each midnight, a top-up
when a room runs low), and the repair orders of those weeks, so every chart, report and rule has data the
moment the demo is up."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from assembly.cli.common import opened_database
from assembly.cli.demo_repairs import has_past_orders, repair_history
from collectors.simulators.history import campus_history, history_hours
from houqin.billing.ledger import ensure_wallets, post
from houqin.billing.metering import RoomBilling
from houqin.billing.policy import PowerPolicy
from houqin.inventory import Inventory
from houqin.settings import Settings
from houqin.store import Database
from houqin.store.tables import EntryKind, LedgerEntry, Wallet
from houqin.telemetry.embedded_store import EmbeddedStore

log = logging.getLogger("houqin")

OPENING_FEN = 5000
TOP_UP_BELOW_FEN = 3000  # well above the low-balance notices: the history cuts no room
TOP_UP_FEN = 10_000


def opening_key(room: str) -> str:
    return f"demo:opening:{room}"


async def demo_history(settings: Settings, inventory: Inventory, days: int, now: datetime | None = None) -> float:
    """Fill ``days`` of history once (a demo that has started before keeps what it has); the seconds taken."""
    if days <= 0 or not inventory.rooms:
        return 0.0
    started = time.monotonic()
    database = await opened_database(settings)
    store = EmbeddedStore(settings.data_dir / "telemetry.sqlite3", settings.telemetry, timezone=settings.tz)
    try:
        first = sorted(inventory.rooms)[0]
        async with database.session() as session:
            if (await session.execute(select(LedgerEntry.id).where(LedgerEntry.key == opening_key(first)))).first():
                return 0.0
        await store.open()
        end = now or datetime.now(UTC)
        rooms = sorted(inventory.rooms)
        await ensure_wallets(database, rooms)
        beginning = history_hours(end, days)[0]
        async with database.session() as session:
            for room in rooms:
                await post(session, room, EntryKind.ADJUSTMENT, OPENING_FEN, beginning, key=opening_key(room),
                           cause="demo opening balance")  # fmt: skip
            await session.commit()
        # No command queue: the history switches no relay (rooms are topped up before they run low).
        policy = PowerPolicy(inventory, None, settings.billing, settings.tz, database)
        billing = RoomBilling(database, inventory, settings.tz, settings.billing.max_room_kw, policy)
        meters = {room.meter for room in inventory.rooms.values()}
        for day in campus_history(inventory, settings.tz, days, end):
            await store.consume(day)
            midnight = day[0].ts
            await _top_up_low_rooms(database, policy, midnight)
            await billing.consume([reading for reading in day if reading.ts == midnight and reading.device in meters])
        await store.rollup()
        if not await has_past_orders(database):
            await repair_history(database, inventory, settings, beginning, end - timedelta(days=1))
        seconds = time.monotonic() - started
        log.info("demo: %d days of history for %d meters and %d rooms in %.1f s", days,
                 len({r.device for r in day}), len(rooms), seconds)  # fmt: skip
        return seconds
    finally:
        await store.close()
        await database.close()


async def _top_up_low_rooms(database: Database, policy: PowerPolicy, at: datetime) -> None:
    async with database.session() as session:
        low = (await session.execute(select(Wallet.room).where(Wallet.balance_fen < TOP_UP_BELOW_FEN))).scalars()
        for room in list(low):
            await policy.post(session, room, EntryKind.TOPUP, TOP_UP_FEN, at, key=f"demo:history:{room}:{at:%Y%m%d}",
                              cause="demo top-up")  # fmt: skip
        await session.commit()
