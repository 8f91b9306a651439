"""Dorm curfew (定时断电): the school's schedule takes power from a group of rooms at night and gives it
back in the morning. A curfew is a state of the room that the power policy weighs with the others, not a
relay switched behind its back: it bills nothing; a top-up during the curfew changes the balance but not
the power; the end of the curfew restores only the rooms that are otherwise allowed power (not cut for
money, not locked, not inside an appliance or overload trip). Each change is a conditional update, so a
firing replayed after a restart, or seen by two processes, switches nothing twice; the relay commands are
keyed by the firing (``key``) and written in the caller's transaction, with the firing's record.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.policy import PowerPolicy
from houqin.store.tables import Wallet, WalletState


class Curfew:
    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy

    async def begin(self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str) -> list[str]:
        """Put ``rooms`` under curfew; the rooms whose relay is switched off (the others were off already)."""
        started = await session.execute(
            update(Wallet).where(Wallet.room.in_(list(rooms)), Wallet.curfew.is_(False))
            .values(curfew=True).returning(Wallet.room, Wallet.state, Wallet.locked, Wallet.tripped_until)
        )  # fmt: skip
        switched = []
        for room, state, locked, tripped_until in started.all():
            powered = state != WalletState.CUT_OFF and not locked and (tripped_until is None or tripped_until <= now)
            if powered:
                await self.policy.switch(session, room, "off", now, "curfew", f"curfew:{key}")
                switched.append(room)
        return sorted(switched)

    async def end(self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str) -> list[str]:
        """End the curfew of ``rooms``; the rooms whose power returns (the others stay off for their reason)."""
        ended = await session.execute(
            update(Wallet).where(Wallet.room.in_(list(rooms)), Wallet.curfew.is_(True))
            .values(curfew=False).returning(Wallet.room, Wallet.state, Wallet.locked, Wallet.tripped_until)
        )  # fmt: skip
        restored = []
        for room, state, locked, tripped_until in ended.all():
            if state != WalletState.CUT_OFF and not locked and (tripped_until is None or tripped_until <= now):
                await self.policy.switch(session, room, "on", now, "curfew over", f"curfew-end:{key}")
                restored.append(room)
        return sorted(restored)
