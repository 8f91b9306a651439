"""The room ledger: every movement of money is an append-only entry with its cause and a unique key, and
the wallet's balance changes in the same transaction, under the wallet's row lock. So the balance is
always the sum of the entries, and an entry asked for twice (a retried notification, a re-read meter)
is posted once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.store import Database
from houqin.store.tables import LedgerEntry, Wallet

KINDS = ("topup", "charge", "allowance", "adjustment", "refund")


def upsert_for(session: AsyncSession):  # type: ignore[no-untyped-def]
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL alike)."""
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _open_wallet(session: AsyncSession, room: str, now: datetime) -> None:
    """A zero wallet for the room unless it has one; ON CONFLICT DO NOTHING, so that two processes (or two
    first credits at once) both find one wallet."""
    made = upsert_for(session)(Wallet).values(room=room, balance_fen=0, state="normal", updated_at=now)
    await session.execute(made.on_conflict_do_nothing())


async def ensure_wallets(database: Database, rooms: list[str]) -> None:
    """A wallet for every room (zero balance), so that posting finds its row to lock."""
    now = datetime.now(UTC)
    async with database.session() as session:
        for room in rooms:
            await _open_wallet(session, room, now)
        await session.commit()


async def _move(session: AsyncSession, room: str, amount_fen: int, now: datetime) -> int:
    """Add ``amount_fen`` to the room's balance (taking the wallet's row lock); the new balance."""
    moved = update(Wallet).where(Wallet.room == room).values(balance_fen=Wallet.balance_fen + amount_fen,
                                                             updated_at=now).returning(Wallet.balance_fen)  # fmt: skip
    balance = (await session.execute(moved)).scalar()
    if balance is None:
        await _open_wallet(session, room, now)  # a room added since the start (ensure_wallets)
        balance = (await session.execute(moved)).scalar_one()
    return int(balance)


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
    """Add an entry and move the balance, in the caller's transaction; None when ``key`` was posted before.

    Two statements: the wallet's balance moves first (which locks its row, so entries of one room are
    written one at a time, each with the balance after it), then the entry is inserted unless its key
    exists; if it does, the move is undone in the same transaction."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    balance = await _move(session, room, amount_fen, now)
    values = {"room": room, "kind": kind, "amount_fen": amount_fen, "balance_after_fen": balance, "kwh": kwh,
              "cause": cause[:255], "note": note, "key": key, "created_at": now}  # fmt: skip
    inserted = upsert_for(session)(LedgerEntry).values(**values).on_conflict_do_nothing(index_elements=["key"])
    entry_id = (await session.execute(inserted.returning(LedgerEntry.id))).scalar()
    if entry_id is None:
        await _move(session, room, -amount_fen, now)
        return None
    # A plain record of what was written (not attached to the session: the row exists already).
    return LedgerEntry(id=entry_id, **values)


async def balance_from_entries(session: AsyncSession, room: str) -> int:
    total = await session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(LedgerEntry.room == room)
    )
    return int(total.scalar_one())
