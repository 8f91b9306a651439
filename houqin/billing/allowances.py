"""A room's free monthly allowance as one pool per tariff: the circuits of a room billed on the same tariff
draw on one allowance, not one each. Each pool holds this month's use and the previous month's, because
circuits cross a month boundary one at a time: the second circuit's window still owes part of its energy
to the month the first one already left."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from houqin.store.keyed import upsert_for
from houqin.store.tables import RoomAllowance

ROOM_POOL = ""  # the room's own tariff


@dataclass
class AllowancePool:
    """A locked ``room_allowances`` row, with the month arithmetic on it."""

    row: RoomAllowance

    def used_in(self, month: str) -> float:
        """kWh of ``month``'s allowance used (0 for a month the pool no longer remembers)."""
        if self.row.month == month:
            return self.row.used_kwh
        if self.row.last_month == month:
            return self.row.last_used_kwh
        return 0.0

    def advance(self, month: str) -> None:
        """Start ``month`` unless the pool is there (or past it) already."""
        if month > self.row.month:  # "YYYY-MM" sorts as time does
            self.row.last_month, self.row.last_used_kwh = self.row.month, self.row.used_kwh
            self.row.month, self.row.used_kwh = month, 0.0

    def add(self, month: str, kwh: float) -> None:
        if self.row.month == month:
            self.row.used_kwh += kwh
        elif self.row.last_month == month:
            self.row.last_used_kwh += kwh


async def allowance_pool(session: AsyncSession, room: str, pool: str, month: str) -> AllowancePool:
    """The room's pool, locked for the caller's transaction; a new one starts at ``month`` unused."""
    row = await session.get(RoomAllowance, (room, pool), with_for_update=True)
    if row is None:
        # ON CONFLICT DO NOTHING: two circuits (or processes) starting the pool at once find one row.
        made = upsert_for(session)(RoomAllowance).values(room=room, pool=pool, month=month, used_kwh=0.0,
                                                         last_month=None, last_used_kwh=0.0)  # fmt: skip
        await session.execute(made.on_conflict_do_nothing())
        row = await session.get(RoomAllowance, (room, pool), with_for_update=True, populate_existing=True)
        assert row is not None
    return AllowancePool(row)
