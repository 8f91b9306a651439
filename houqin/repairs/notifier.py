"""Telling maintenance groups about repair orders: WeCom and DingTalk group robots, or a JSON webhook.

Messages come from the order event log (see ``Notifier``), each retried with exponential backoff (a robot
answers HTTP 200 with a non-zero ``errcode`` when it refuses: that is a failure too, e.g. 45009 when
rate-limited). A message that still fails after ``max_attempts`` is logged with its text, so nobody has
to guess what was not delivered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from prometheus_client import Counter
from sqlalchemy import func, select

from houqin.backoff import Backoff
from houqin.outbox import RETAIN, START_GRACE, Deliveries, Message, Robot, poll_until
from houqin.repairs.faults import OrderChange
from houqin.settings import NotifySettings, Webhook
from houqin.store import Database
from houqin.store.tables import EventKind, RepairEvent, RepairOrder, User

SENT = Counter("houqin_notifications_total", "Repair-order notifications", ["kind", "result"])

HEADLINES = {
    "opened": "新报修 New repair order",
    "reopened": "报修重开 Repair order reopened",
    "assigned": "已派单 Repair order assigned",
    "escalated": "报修超时 Repair order overdue",
    "resolved": "已修复 Repair order resolved",
}


@dataclass(frozen=True)
class Notice:
    news: str  # opened | reopened | assigned | escalated | resolved
    number: str
    title: str
    priority: str
    category: str
    location: str
    team: str | None
    assignee: str | None
    due: str
    event_id: int = 0  # the order event it tells of: a receiver that sees it twice can tell

    def lines(self) -> list[str]:
        return [
            f"{self.number}: {self.title}",
            f"位置 Location: {self.location or '-'}",
            f"优先级 Priority: {self.priority} · 类别 Category: {self.category}",
            f"处理 Assigned: {self.assignee or self.team or '-'} · 期限 Due: {self.due}",
        ]


# The order events that are news, and what a webhook calls them.
NEWS = {EventKind.CREATED: "opened", EventKind.REOPENED: "reopened", EventKind.ASSIGNED: "assigned",
        EventKind.ESCALATED: "escalated", EventKind.RESOLVED: "resolved"}  # fmt: skip
POLL_S = 1.0  # how often other processes' events are looked for (this process's wake the sender at once)
BATCH = 50


class Notifier:
    """Sends repair-order events to the configured robots and webhooks: a component of ``houqin run``.

    The outbox is the order event log itself (``repair_events``, written with each change of an order), so
    a crash between a change and its message loses nothing: whichever process sends next finds it (see
    ``houqin.outbox``). ``notify`` only wakes the sender."""

    def __init__(self, settings: NotifySettings, database: Database, backoff: float = 2.0) -> None:
        self.settings = settings
        self.database = database
        self.retry = Backoff(backoff, 300.0)
        self.deliveries = Deliveries(database, "repair")
        self._wake = asyncio.Event()
        self.sent = 0
        self.lost = 0

    @property
    def name(self) -> str:
        return "notifier"

    async def notify(self, change: OrderChange) -> None:
        """An order changed in this process: look for news now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        hooks = [hook for hook in self.settings.webhooks if set(hook.events) & set(NEWS.values())]
        await poll_until(stop, self._wake, POLL_S, lambda client: self.send_due(client, hooks))

    async def send_due(self, client: httpx.AsyncClient, hooks: list[Webhook]) -> bool:
        """Send what is due to every webhook; True if anything was tried (more may be waiting)."""
        tried = False
        for hook in hooks:
            robot = Robot.of(hook.kind, hook.url, hook.secret)
            old = RepairEvent.at < datetime.now(UTC) - START_GRACE
            after = await self.deliveries.start_of(robot.key, select(func.max(RepairEvent.id)).where(old))
            for event_id, notice in await self._due(robot.key, hook, after):
                attempt = await self.deliveries.claim(event_id, robot.key)
                if attempt is None:
                    continue  # another process has it, or sent it
                tried = True
                await self._attempt(client, robot, hook.kind, event_id, notice, attempt)
        return tried

    async def _due(self, key: str, hook: Webhook, after: int) -> list[tuple[int, Notice]]:
        kinds = [kind for kind, news in NEWS.items() if news in hook.events]
        unsettled = self.deliveries.unsettled(RepairEvent.id, key, datetime.now(UTC))
        query = (
            select(RepairEvent.id, RepairEvent.kind, RepairOrder, User.username)
            .join(RepairOrder, RepairOrder.id == RepairEvent.order_id)
            .outerjoin(User, User.id == RepairOrder.assignee_id)
            .where(RepairEvent.id > after, RepairEvent.at > datetime.now(UTC) - RETAIN)
            .where(RepairEvent.kind.in_(kinds), unsettled)
            .order_by(RepairEvent.id)
            .limit(BATCH)
        )
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return [(event_id, _notice(NEWS[kind], order, assignee, event_id)) for event_id, kind, order, assignee in rows]

    async def _attempt(
        self, client: httpx.AsyncClient, robot: Robot, kind: str, event_id: int, notice: Notice, attempt: int
    ) -> None:
        headline = HEADLINES[notice.news]
        title = f"{headline} {notice.number}" if kind == "dingtalk" else headline
        message = Message(title, notice.lines(), {"event": f"repair_order.{notice.news}", **notice.__dict__})
        outcome = await self.deliveries.attempt(client, robot, event_id, attempt, message,
                                                self.settings.max_attempts, self.retry)  # fmt: skip
        if outcome != "failed":
            SENT.labels(kind, outcome).inc()
        self.sent += outcome == "sent"
        self.lost += outcome == "lost"


def _notice(news: str, order: RepairOrder, assignee: str | None, event_id: int) -> Notice:
    location = " ".join(str(part) for part in (order.building, order.room) if part)
    return Notice(news, order.number, order.title, order.priority, order.category, location, order.team,
                  assignee, f"{order.due_at:%Y-%m-%d %H:%M} UTC", event_id)  # fmt: skip
