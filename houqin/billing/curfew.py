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
from houqin.billing.switching import active_causes
from houqin.commands import CommandRequest, Handover, write_commands
from houqin.inventory.circuits import CutCause
from houqin.store.tables import Wallet


class Curfew:
    def __init__(self, policy: PowerPolicy) -> None:
        self.policy = policy

    async def apply(
        self, session: AsyncSession, rooms: Sequence[str], action: str, limit_w: int | None, now: datetime, key: str,
        handover: Handover | None = None,
    ) -> list[str]:  # fmt: skip
        """Bring ``rooms`` to a dorm-power zone's state: ``off`` is the curfew; ``on`` ends it and any night
        limit; ``limit`` ends the curfew and puts ``limit_w`` in force. The rooms whose relay is switched."""
        limit = limit_w if action == "limit" else None
        for chunk in _chunks(rooms):
            await session.execute(
                update(Wallet).where(Wallet.room.in_(chunk), Wallet.night_limit_w.is_distinct_from(limit))
                .values(night_limit_w=limit)
            )  # fmt: skip
        return await self._change(session, rooms, now, key, under=action == "off", handover=handover)

    async def begin(
        self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str, handover: Handover | None = None
    ) -> list[str]:
        """Put ``rooms`` under curfew; the rooms whose relay is switched off (the others were off already)."""
        return await self._change(session, rooms, now, key, under=True, handover=handover)

    async def end(
        self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str, handover: Handover | None = None
    ) -> list[str]:
        """End the curfew of ``rooms``; the rooms whose power returns (the others stay off for their reason)."""
        return await self._change(session, rooms, now, key, under=False, handover=handover)

    async def _change(
        self, session: AsyncSession, rooms: Sequence[str], now: datetime, key: str, *, under: bool,
        handover: Handover | None,
    ) -> list[str]:  # fmt: skip
        """The rooms switched. Their commands are written in one statement (a curfew switches a thousand rooms
        at once), handed to ``handover`` when given — sent the moment the caller commits — else queued for the
        dispatchers, whom the caller wakes after commit (``CommandQueue.notify``)."""
        action, why, cause = ("off", "curfew", "curfew") if under else ("on", "curfew over", "curfew-end")
        switched: list[str] = []
        requests: list[CommandRequest] = []
        for chunk in _chunks(rooms):
            changed = await session.execute(
                update(Wallet).where(Wallet.room.in_(chunk), Wallet.curfew.is_(not under))
                .values(curfew=under).returning(Wallet.room, Wallet.state, Wallet.locked, Wallet.tripped_until)
            )  # fmt: skip
            for room, state, locked, tripped_until in changed.all():
                # Only what has power for every other reason is switched: the rest is off already.
                others = active_causes(state, locked, False, tripped_until, now)
                room_requests = self.policy.switches.requests(room, CutCause.CURFEW, action, others, why,
                                                              f"{cause}:{key}")  # fmt: skip
                if room_requests:
                    switched.append(room)
                    requests.extend(room_requests)
        if requests:
            connection = await session.connection()
            if handover is not None:
                await handover.add(connection, requests, now)
            else:
                await write_commands(connection, requests, now)
        return sorted(switched)


def _chunks(rooms: Sequence[str], size: int = 1000) -> list[list[str]]:
    # Bounded IN lists: a campus has tens of thousands of rooms, a statement's parameters are limited.
    return [list(rooms[start : start + size]) for start in range(0, len(rooms), size)]


async def night_limits(session: AsyncSession) -> dict[str, int]:
    """The night limits in force: room -> W."""
    rows = await session.execute(select(Wallet.room, Wallet.night_limit_w).where(Wallet.night_limit_w.is_not(None)))
    return {room: int(limit) for room, limit in rows.all() if limit is not None}
