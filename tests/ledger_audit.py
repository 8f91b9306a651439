"""The money audit after processes were killed on a campus billed at one flat price: rooms whose wallet is
not the sum of their ledger, and meters whose money charged (entries, and the fraction of a fen carried)
is not their counter's advance since the first reading stored × the price — an interval charged twice or
skipped shows; the per-window rounding (under one micro-fen a window) does not. A room's meter is billed
on its own (one meter per room, no circuits, no free allowance)."""

from __future__ import annotations

from sqlalchemy import func, select

from houqin.billing.pricing import MICRO
from houqin.store import Database
from houqin.store.tables import EntryKind, LedgerEntry, MeterBilling, Wallet
from tests.servers import Influxd

TOLERANCE_MICRO_FEN = 1000  # a few windows' rounding at most


async def ledger_audit(database: Database, influxd: Influxd, influx_database: str, price_fen: int) -> tuple[int, int]:
    """(rooms whose wallet differs from their ledger, meters charged other than their advance × price)."""
    async with database.session() as session:
        wallets = dict((await session.execute(select(Wallet.room, Wallet.balance_fen))).all())
        sums = dict((await session.execute(select(LedgerEntry.room, func.sum(LedgerEntry.amount_fen))
                                           .group_by(LedgerEntry.room))).all())  # fmt: skip
        charged = dict((await session.execute(select(LedgerEntry.room, func.sum(LedgerEntry.amount_fen))
                                              .where(LedgerEntry.kind == EntryKind.CHARGE)
                                              .group_by(LedgerEntry.room))).all())  # fmt: skip
        billed = (await session.execute(select(MeterBilling.meter, MeterBilling.room, MeterBilling.last_kwh,
                                               MeterBilling.carry_micro_fen))).all()  # fmt: skip
    firsts = influxd.query(influx_database, 'SELECT first("energy") FROM electricity GROUP BY "device"')
    first = {series["tags"]["device"]: series["values"][0][1] for series in firsts}
    ledger_mismatches = sum(1 for room, balance in wallets.items() if balance != sums.get(room, 0))
    money_mismatches = 0
    for meter, room, last_kwh, carry in billed:
        spent = -int(charged.get(room, 0) or 0) * MICRO + carry
        due = (last_kwh - first[meter]) * price_fen * MICRO
        money_mismatches += abs(spent - due) > TOLERANCE_MICRO_FEN
    return ledger_mismatches, money_mismatches
