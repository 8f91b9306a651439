"""The ledger and billing from the meter, property-tested: over random sequences of readings (late,
repeated, resets, impossible jumps), top-ups, refunds and restarts, the balance always equals the sum
of the entries, and what is charged is the tariff's price of the energy that was really used."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from houqin.billing.ledger import balance_from_entries, ensure_wallets, post
from houqin.billing.metering import RoomBilling
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.store import Database, upgrade_database
from houqin.store.tables import BillingEvent, LedgerEntry, Wallet

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
INVENTORY = """
site: {name: Billing test}
tariffs:
  - {id: flat, price_fen_per_kwh: 56, free_kwh_per_month: FREE}
gateways: [{id: gw, type: rtu_over_tcp, host: 127.0.0.1, port: 1502}]
devices:
  - {id: m1, model: eastron-sdm120, gateway: gw, unit: 1, building: B, room: R1}
rooms:
  - {id: R1, building: B, floor: 1, meter: m1, tariff: flat, beds: 4}
"""

operation = st.one_of(
    st.tuples(st.just("read"), st.integers(10, 3600), st.floats(0.0, 1.0)),  # seconds later, share of 9.9 kW
    st.tuples(st.just("repeat"), st.just(0), st.just(0.0)),  # the last reading again
    st.tuples(st.just("late"), st.integers(1, 600), st.just(0.0)),  # an older reading arrives now
    st.tuples(st.just("reset"), st.integers(10, 600), st.floats(0.0, 0.9)),  # register down to a share
    st.tuples(st.just("jump"), st.integers(10, 600), st.floats(500.0, 5000.0)),  # more than 10 kW could draw
    st.tuples(st.just("topup"), st.integers(1, 50_000), st.just(0.0)),
    st.tuples(st.just("refund"), st.integers(1, 5_000), st.just(0.0)),
    st.tuples(st.just("restart"), st.just(0), st.just(0.0)),
)


async def scenario(ops: list[tuple[str, int, float]], free_kwh: float) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "devices.yaml"
        path.write_text(INVENTORY.replace("FREE", str(free_kwh)), encoding="utf-8")
        inventory: Inventory = load_inventory(path)
        database = Database(f"sqlite+aiosqlite:///{workdir}/houqin.sqlite3")
        await upgrade_database(database)
        await ensure_wallets(database, ["R1"])
        billing = RoomBilling(database, inventory, TZ)
        tags = inventory.device_tags(inventory.devices["m1"])
        ts, kwh, sent = T0, 100.0, [(T0, 100.0)]
        used = 0.0  # energy really used (valid advances), which billing must charge for
        lowered = False
        money = 0
        await billing.consume([Reading("m1", ts, {"energy": kwh}, tags)])
        for n, (kind, seconds, amount) in enumerate(ops):
            if kind in {"read", "reset", "jump"}:
                ts += timedelta(seconds=seconds)
                if kind == "read":
                    advance = 9.9 * seconds / 3600 * amount  # at most what a room can draw
                    kwh += advance
                    used += advance
                else:
                    lowered = lowered or (kind == "reset" and kwh > 0)
                    kwh = kwh * amount if kind == "reset" else kwh + amount
                sent.append((ts, kwh))
                await billing.consume([Reading("m1", ts, {"energy": kwh}, tags)])
            elif kind == "repeat":
                await billing.consume([Reading("m1", ts, {"energy": kwh}, tags)])
            elif kind == "late":
                old_ts, old_kwh = sent[max(0, len(sent) - 1 - seconds % len(sent))]
                await billing.consume([Reading("m1", old_ts, {"energy": old_kwh}, tags)])
            elif kind == "restart":
                billing = RoomBilling(database, inventory, TZ)  # nothing in memory carries over
            else:
                sign = 1 if kind == "topup" else -1
                async with database.session() as session:
                    await post(session, "R1", kind, sign * seconds, ts, key=f"{kind}:{n}", cause="test")
                    await post(session, "R1", kind, sign * seconds, ts, key=f"{kind}:{n}", cause="test again")
                    await session.commit()
                money += sign * seconds
            async with database.session() as session:
                wallet = await session.get(Wallet, "R1")
                assert wallet is not None and wallet.balance_fen == await balance_from_entries(session, "R1")
        async with database.session() as session:
            charged = -int((await session.execute(select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0))
                                                  .where(LedgerEntry.kind == "charge"))).scalar_one())  # fmt: skip
            free = float((await session.execute(select(func.coalesce(func.sum(LedgerEntry.kwh), 0.0))
                                                .where(LedgerEntry.kind == "allowance"))).scalar_one())  # fmt: skip
            wallet = await session.get(Wallet, "R1")
            events = {e.kind for e in (await session.execute(select(BillingEvent))).scalars()}
        await database.close()
        # Every kWh really used is either free (up to the allowance) or charged at 56 fen; the sub-fen
        # remainder of the last charge may still be carried.
        assert free <= free_kwh + 1e-9
        assert abs(free + charged / 56 - used) <= 1 / 56 + 1e-6 * (len(ops) + 1)
        assert wallet is not None and wallet.balance_fen == money - charged
        if lowered:
            assert "reset" in events


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=20), st.sampled_from([0.0, 3.0]))
def test_the_balance_is_the_sum_of_the_entries_and_only_used_energy_is_charged(
    ops: list[tuple[str, int, float]], free_kwh: float
) -> None:
    asyncio.run(scenario(ops, free_kwh))
