"""The year-end refund: what is left in a room's wallet paid back to its students, as a staff step with
an audit trail (who, to whom, why), exactly once per request however often it is sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from houqin.billing.policy import PowerPolicy
from houqin.store import Database
from houqin.store.tables import EntryKind, LedgerEntry, Wallet


class NothingToRefundError(ValueError):
    """The wallet holds no money to pay back."""


class RefundKeyReusedError(ValueError):
    """The request's key was used for another refund (another room, recipient or reason)."""


async def refund_balance(
    database: Database, policy: PowerPolicy, room: str, now: datetime, *, key: str, by: str, to: str, reason: str
) -> LedgerEntry:
    """Post a refund of the whole balance (read under the wallet's row lock, so a charge arriving meanwhile
    is not refunded twice or left behind). The same ``key`` again returns the first refund."""
    entry_key = f"refund:{room}:{key}"
    note = f"balance paid back to {to}: {reason}"
    async with database.session() as session:
        existing = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == entry_key))).scalar()
        if existing is not None:
            if existing.note != note:
                raise RefundKeyReusedError("this Idempotency-Key was used for a different refund")
            return existing
        locked = select(Wallet.balance_fen).where(Wallet.room == room).with_for_update()
        balance = (await session.execute(locked)).scalar() or 0
        if balance <= 0:
            raise NothingToRefundError(f"room {room} has {balance / 100:.2f} yuan: nothing to refund")
        entry = await policy.post(session, room, EntryKind.REFUND, -balance, now, key=entry_key,
                                  cause=f"refund:{by}", note=note)  # fmt: skip
        await session.commit()
    if entry is None:  # the same request, sent twice at once: the other one posted it
        async with database.session() as session:
            entry = (await session.execute(select(LedgerEntry).where(LedgerEntry.key == entry_key))).scalar_one()
    return entry
