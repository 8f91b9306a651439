"""Dorm curfew (定时断电) and night limits: the school's schedule takes power from a group of rooms at night and
gives it back in the morning, or lowers their power limit for the night instead. A curfew is a state of the
room that the power policy weighs with the others, not a relay switched behind its back: it bills nothing; a
top-up during the curfew changes the balance but not the power; the end of the curfew restores only the rooms
that are otherwise allowed power (not cut for money, not locked, not inside an appliance or overload trip).
Each change is a conditional update, so a firing replayed after a restart, or seen by two processes, switches
nothing twice; the relay commands are keyed by the firing (``key``) and written in the caller's transaction,
with the firing's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.policy import PowerPolicy
from houqin.store.tables import Wallet, WalletState


class Curfew:
    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy

    async def apply(
        self, session: AsyncSession, rooms: Sequence[str], action: str, limit_w: int | None, now: datetime, key: str
    ) -> list[str]:
        """Bring ``rooms`` to a dorm-power zone's state: ``off`` is the curfew; ``on`` ends it and any night
        limit; ``limit`` ends the curfew and puts ``limit_w`` in force. The rooms whose relay is switched."""
        limit = limit_w if action == "limit" else None
        await session.execute(
            update(Wallet).where(Wallet.room.in_(list(rooms)), Wallet.night_limit_w.is_distinct_from(limit))
            .values(night_limit_w=limit)
        )  # fmt: skip
        if action == "off":
            return await self.begin(session, rooms, now, key)
        return await self.end(session, rooms, now, key)

    async def begin(self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str) -> list[str]:
        """Put ``rooms`` under curfew; the rooms whose relay is switched off (the others were off already)."""
        return await self._change(session, rooms, now, key, under=True)

    async def end(self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str) -> list[str]:
        """End the curfew of ``rooms``; the rooms whose power returns (the others stay off for their reason)."""
        return await self._change(session, rooms, now, key, under=False)

    async def _change(
        self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str, *, under: bool
    ) -> list[str]:
        changed = await session.execute(
            update(Wallet).where(Wallet.room.in_(list(rooms)), Wallet.curfew.is_(not under))
            .values(curfew=under).returning(Wallet.room, Wallet.state, Wallet.locked, Wallet.tripped_until)
        )  # fmt: skip
        switched = []
        for room, state, locked, tripped_until in changed.all():
            # Only a room that has power for every other reason is switched: the others are off already.
            if state != WalletState.CUT_OFF and not locked and (tripped_until is None or tripped_until <= now):
                action, why, cause = ("off", "curfew", "curfew") if under else ("on", "curfew over", "curfew-end")
                await self.policy.switch(session, room, action, now, why, f"{cause}:{key}")
                switched.append(room)
        return sorted(switched)


async def night_limits(session: AsyncSession) -> dict[str, int]:
    """The night limits in force: room -> W."""
    rows = await session.execute(select(Wallet.room, Wallet.night_limit_w).where(Wallet.night_limit_w.is_not(None)))
    return {room: int(limit) for room, limit in rows.all() if limit is not None}
