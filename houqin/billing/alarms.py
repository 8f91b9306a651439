"""Where a room's alarms go besides its students' page: the school's dorm system hears of every notice (low
balance, cut off, restored, tripped, locked …) as signed JSON, and staff robots get a daily summary of the
rooms that need someone (locked, in overdraft, cut off, low).

The notices are written in the transaction that caused them (``houqin.billing.policy``), so they are their
own outbox: delivered through ``houqin.outbox`` — claimed per webhook in the SQL store, retried, never lost
at a crash. The summary is an event of its own per local day: one process sends it, once per robot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from houqin.backoff import Backoff
from houqin.outbox import RETAIN, START_GRACE, Deliveries, Message, Robot, poll_until
from houqin.settings import NotifySettings
from houqin.store import Database
from houqin.store.tables import RoomNotice, Wallet, WalletState

POLL_S = 2.0
BATCH = 100
LISTED = 20  # rooms named in a summary line; the rest are counted
SUMMARY = "宿舍用电日报 Dorm power daily summary"
ALARM = "宿舍用电提醒 Dorm power alarm"


class RoomAlarms:
    """A component of ``houqin run`` (with the billing role)."""

    def __init__(self, settings: NotifySettings, database: Database, timezone: ZoneInfo, backoff: float = 2.0) -> None:
        self.settings = settings
        self.database = database
        self.timezone = timezone
        self.retry = Backoff(backoff, 300.0)
        self.notices = Deliveries(database, "room")
        self.summaries = Deliveries(database, "summary")
        self._wake = asyncio.Event()
        self._summarized: set[tuple[int, str]] = set()  # (day, robot) done here: not asked again
        self.sent = 0
        self.lost = 0

    @property
    def name(self) -> str:
        return "room-alarms"

    async def run(self, stop: asyncio.Event) -> None:
        await poll_until(stop, self._wake, POLL_S, self.send_due)

    async def send_due(self, client: httpx.AsyncClient, now: datetime | None = None) -> bool:
        now = now or datetime.now(UTC)
        tried = False
        for hook in self.settings.dorm_webhooks:
            robot = Robot.of("json", hook.url, hook.secret)
            old = RoomNotice.created_at < now - START_GRACE
            after = await self.notices.start_of(robot.key, select(func.max(RoomNotice.id)).where(old))
            query = (
                select(RoomNotice)
                .where(RoomNotice.id > after, RoomNotice.created_at > now - RETAIN, RoomNotice.kind.in_(hook.kinds))
                .where(self.notices.unsettled(RoomNotice.id, robot.key, now))
                .order_by(RoomNotice.id)
                .limit(BATCH)
            )
            async with self.database.session() as session:
                notices = (await session.execute(query)).scalars().all()
            for notice in notices:
                attempt = await self.notices.claim(notice.id, robot.key)
                if attempt is not None:
                    tried = True
                    body = {"event": f"room.{notice.kind}", "event_id": notice.id, "room": notice.room,
                            "kind": str(notice.kind), "balance_fen": notice.balance_fen, "message": notice.message,
                            "at": notice.created_at.isoformat()}  # fmt: skip
                    message = Message(ALARM, [notice.message], body)
                    await self._attempt(client, self.notices, robot, notice.id, message, attempt)
        await self._summary(client, now)
        return tried

    async def _summary(self, client: httpx.AsyncClient, now: datetime) -> None:
        local = now.astimezone(self.timezone)
        if local.time() < self.settings.summary_at:
            return
        day = local.date()
        robots = [Robot.of(hook.kind, hook.url, hook.secret) for hook in self.settings.webhooks
                  if "daily_summary" in hook.events]  # fmt: skip
        for robot in robots:
            if (day.toordinal(), robot.key) in self._summarized:
                continue
            attempt = await self.summaries.claim(day.toordinal(), robot.key)
            if attempt is None:
                self._summarized.add((day.toordinal(), robot.key))  # sent, given up, or another process's
                continue
            lines, body = await self.summary(day)
            message = Message(SUMMARY, lines, body)
            if await self._attempt(client, self.summaries, robot, day.toordinal(), message, attempt):
                self._summarized.add((day.toordinal(), robot.key))

    async def summary(self, day: date) -> tuple[list[str], dict[str, Any]]:
        """The day's summary: rooms locked, in overdraft, cut off, low — as lines and as JSON."""
        async with self.database.session() as session:
            wallets = (await session.execute(select(Wallet).order_by(Wallet.room))).scalars().all()
        locked = [w.room for w in wallets if w.locked]
        overdraft = [(w.room, w.balance_fen) for w in wallets if w.balance_fen < 0]
        cut = [w.room for w in wallets if w.state == WalletState.CUT_OFF]
        low = [w.room for w in wallets if w.state == WalletState.LOW]

        def named(rooms: list[str]) -> str:
            more = f" … +{len(rooms) - LISTED}" if len(rooms) > LISTED else ""
            return (", ".join(rooms[:LISTED]) + more) if rooms else "-"

        lines = [
            f"日期 Date: {day.isoformat()}",
            f"锁定 Locked ({len(locked)}): {named(locked)}",
            f"透支 In overdraft ({len(overdraft)}): {named([f'{r} ¥{fen / 100:.2f}' for r, fen in overdraft])}",
            f"断电 Cut off ({len(cut)}): {named(cut)}",
            f"余额不足 Low ({len(low)}): {named(low)}",
        ]
        body = {"event": "dorm_power.daily_summary", "event_id": day.toordinal(), "date": day.isoformat(),
                "locked": locked, "overdraft": [{"room": r, "balance_fen": fen} for r, fen in overdraft],
                "cut_off": cut, "low": low}  # fmt: skip
        return lines, body

    async def _attempt(
        self, client: httpx.AsyncClient, deliveries: Deliveries, robot: Robot, event_id: int, message: Message,
        attempt: int,
    ) -> bool:  # fmt: skip
        outcome = await deliveries.attempt(client, robot, event_id, attempt, message, self.settings.max_attempts,
                                           self.retry)  # fmt: skip
        self.sent += outcome == "sent"
        self.lost += outcome == "lost"
        return outcome == "sent"
