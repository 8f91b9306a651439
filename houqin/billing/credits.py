"""Money into a room: top-ups and staff adjustments, each applied once (by key) with the power policy."""

from __future__ import annotations

from datetime import datetime

from houqin.billing.policy import PowerPolicy
from houqin.store import Database
from houqin.store.tables import EntryKind, LedgerEntry


async def credit(
    database: Database,
    policy: PowerPolicy,
    room: str,
    kind: EntryKind,
    amount_fen: int,
    now: datetime,
    *,
    key: str,
    cause: str,
    note: str = "",
) -> LedgerEntry | None:
    """Post a top-up, refund or adjustment and let the policy cut or restore; None if ``key`` was posted."""
    async with database.session() as session:
        entry = await policy.post(session, room, kind, amount_fen, now, key=key, cause=cause, note=note)
        await session.commit()
        return entry
