"""The repair clock: once a minute, overdue orders escalate and orders resolved long enough ago close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import RepairDesk
from houqin.store import Database
from houqin.ticker import run_every

log = logging.getLogger(__name__)


class RepairClock:
    """A component of ``houqin run``."""

    def __init__(
        self,
        database: Database,
        desk: RepairDesk,
        on_order_change: Callable[[OrderChange], Awaitable[None]] | None = None,
        every: float = 60.0,
    ) -> None:
        self.database = database
        self.desk = desk
        self.on_order_change = on_order_change
        self.every = every

    @property
    def name(self) -> str:
        return "repair-clock"

    async def run(self, stop: asyncio.Event) -> None:
        await run_every(stop, self.every, lambda: self.tick(datetime.now(UTC)), "repair clock housekeeping")

    async def tick(self, now: datetime) -> None:
        async with self.database.session() as session:
            overdue, closed = await self.desk.housekeeping(session, now)
            await session.commit()
        for order in overdue:
            log.warning("repair order %s is overdue (due %s)", order.number, order.due_at)
            if self.on_order_change is not None:
                await self.on_order_change(OrderChange(order, "escalated"))
        if closed:
            log.info("closed %d repair orders resolved long enough ago", len(closed))
