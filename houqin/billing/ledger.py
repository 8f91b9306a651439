"""The room ledger: every movement of money is an append-only entry with its cause and a unique key, and
the wallet's balance changes in the same transaction, under the wallet's row lock. So the balance is
always the sum of the entries, and an entry asked for twice (a retried notification, a re-read meter)
is posted once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.store import Database
from houqin.store.keyed import insert_unless_keyed, upsert_for
from houqin.store.tables import EntryKind, LedgerEntry, Wallet, WalletState


async def _open_wallet(session: AsyncSession, room: str, now: datetime) -> None:
    """A zero wallet for the room unless it has one; ON CONFLICT DO NOTHING, so that two processes (or two
    first credits at once) both find one wallet."""
    made = upsert_for(session)(Wallet).values(room=room, balance_fen=0, state=WalletState.NORMAL, updated_at=now)
    await session.execute(made.on_conflict_do_nothing())


async def ensure_wallets(database: Database, rooms: list[str]) -> None:
    """A wallet for every room (zero balance), so that posting finds its row to lock."""
    now = datetime.now(UTC)
    async with database.session() as session:
        for room in rooms:
            await _open_wallet(session, room, now)
        await session.commit()


@dataclass(frozen=True)
class WalletAfter:
    """The wallet as the move left it (what the power policy decides on), read in the same statement."""

    balance_fen: int
    state: WalletState
    low_level: int
    cut_deferred: bool
    tripped_until: datetime | None
    locked: bool = False
    curfew: bool = False


_WALLETS: Table = Wallet.__table__  # type: ignore[assignment]
_ENTRIES: Table = LedgerEntry.__table__  # type: ignore[assignment]
# Core statements on the tables, built once: the hot path of every payment and every charge, where the
# ORM's per-statement work cost more than the database round trip.
_MOVE = (
    update(_WALLETS)
    .where(_WALLETS.c.room == bindparam("wallet_room"))
    .values(balance_fen=_WALLETS.c.balance_fen + bindparam("amount"), updated_at=bindparam("moved_at"))
    .returning(_WALLETS.c.balance_fen, _WALLETS.c.state, _WALLETS.c.low_level, _WALLETS.c.cut_deferred,
               _WALLETS.c.tripped_until, _WALLETS.c.locked, _WALLETS.c.curfew)
)  # fmt: skip


_INSERT = insert_unless_keyed(_ENTRIES)


async def _move(session: AsyncSession, room: str, amount_fen: int, now: datetime) -> WalletAfter:
    """Add ``amount_fen`` to the room's balance (taking the wallet's row lock); the wallet after."""
    connection = await session.connection()
    params = {"wallet_room": room, "amount": amount_fen, "moved_at": now}
    row = (await connection.execute(_MOVE, params)).first()
    if row is None:
        await _open_wallet(session, room, now)  # a room added since the start (ensure_wallets)
        row = (await connection.execute(_MOVE, params)).one()
    return WalletAfter(*row)


async def post(
    session: AsyncSession,
    room: str,
    kind: EntryKind,
    amount_fen: int,
    now: datetime,
    *,
    key: str,
    cause: str,
    note: str = "",
    kwh: float | None = None,
    circuit: str | None = None,
) -> tuple[LedgerEntry, WalletAfter] | None:
    """Add an entry and move the balance, in the caller's transaction: the entry and the wallet it left
    (what the power policy decides on), or None when ``key`` was posted before.

    Two statements: the wallet's balance moves first (which locks its row, so entries of one room are
    written one at a time, each with the balance after it), then the entry is inserted unless its key
    exists; if it does, the move is undone in the same transaction."""
    if kind not in EntryKind.__members__.values():
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    wallet = await _move(session, room, amount_fen, now)
    values = {"room": room, "kind": kind, "amount_fen": amount_fen, "balance_after_fen": wallet.balance_fen,
              "kwh": kwh, "cause": cause[:255], "note": note, "key": key, "created_at": now,
              "circuit": circuit}  # fmt: skip
    connection = await session.connection()
    entry_id = (await connection.execute(_INSERT[connection.dialect.name], values)).scalar()
    if entry_id is None:
        await _move(session, room, -amount_fen, now)
        return None
    # A plain record of what was written (not attached to the session: the row exists already).
    return LedgerEntry(id=entry_id, **values), wallet


async def balance_from_entries(session: AsyncSession, room: str) -> int:
    total = await session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(LedgerEntry.room == room)
    )
    return int(total.scalar_one())
