"""The room ledger: every movement of money is an append-only entry with its cause and a unique key, and
the wallet's balance changes in the same transaction, under the wallet's row lock. So the balance is
always the sum of the entries, and an entry asked for twice (a retried notification, a re-read meter)
is posted once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.store import Database
from houqin.store.tables import LedgerEntry, Wallet

KINDS = ("topup", "charge", "allowance", "adjustment", "refund")


async def ensure_wallets(database: Database, rooms: list[str]) -> None:
    """A wallet for every room (zero balance), so that posting only ever locks an existing row."""
    async with database.session() as session:
        existing = set((await session.execute(select(Wallet.room))).scalars())
        for room in rooms:
            if room in existing:
                continue
            try:
                async with session.begin_nested():
                    session.add(Wallet(room=room, balance_fen=0, state="normal"))
            except IntegrityError:
                continue  # another process made it first
        await session.commit()


async def post(
    session: AsyncSession,
    room: str,
    kind: str,
    amount_fen: int,
    now: datetime,
    *,
    key: str,
    cause: str,
    note: str = "",
    kwh: float | None = None,
) -> LedgerEntry | None:
    """Add an entry and move the balance, in the caller's transaction; None when ``key`` was posted before."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    wallet = await session.get(Wallet, room, with_for_update=True)
    if wallet is None:
        # Wallets are made at start (ensure_wallets); a room added since gets its own on first use, made
        # with ON CONFLICT DO NOTHING so that two first credits at once both find one wallet.
        insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(Wallet).values(room=room, balance_fen=0, state="normal", updated_at=now).on_conflict_do_nothing()
        )
        wallet = await session.get(Wallet, room, with_for_update=True, populate_existing=True)
        assert wallet is not None
    if (await session.execute(select(LedgerEntry.id).where(LedgerEntry.key == key))).first() is not None:
        return None
    wallet.balance_fen += amount_fen
    wallet.updated_at = now
    entry = LedgerEntry(room=room, kind=kind, amount_fen=amount_fen, balance_after_fen=wallet.balance_fen, kwh=kwh,
                        cause=cause[:255], note=note, key=key, created_at=now)  # fmt: skip
    session.add(entry)
    await session.flush()
    return entry


async def balance_from_entries(session: AsyncSession, room: str) -> int:
    total = await session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(LedgerEntry.room == room)
    )
    return int(total.scalar_one())
