"""Telling maintenance groups about repair orders: WeCom and DingTalk group robots, or a JSON webhook.

Messages come from the order event log (see ``Notifier``), each retried with exponential backoff (a robot
answers HTTP 200 with a non-zero ``errcode`` when it refuses: that is a failure too, e.g. 45009 when
rate-limited). A message that still fails after ``max_attempts`` is logged with its text, so nobody has
to guess what was not delivered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote_plus

import httpx
from prometheus_client import Counter
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from houqin.backoff import Backoff
from houqin.repairs.faults import OrderChange
from houqin.settings import NotifySettings, Webhook
from houqin.store import Database
from houqin.store.tables import EventKind, NotificationDelivery, NotificationStart, RepairEvent, RepairOrder, User

log = logging.getLogger(__name__)

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


def wecom_body(notice: Notice) -> dict[str, Any]:
    """WeCom group robot, markdown message (content at most 4,096 bytes)."""
    text = f"### {HEADLINES[notice.news]}\n" + "\n".join(f"> {line}" for line in notice.lines())
    return {"msgtype": "markdown", "markdown": {"content": text.encode()[:4096].decode(errors="ignore")}}


def dingtalk_body(notice: Notice) -> dict[str, Any]:
    """DingTalk group robot, markdown message (a title for the notification, a markdown text)."""
    text = f"#### {HEADLINES[notice.news]}\n\n" + "\n\n".join(f"- {line}" for line in notice.lines())
    return {"msgtype": "markdown", "markdown": {"title": f"{HEADLINES[notice.news]} {notice.number}", "text": text}}


def json_body(notice: Notice) -> dict[str, Any]:
    return {"event": f"repair_order.{notice.news}", **notice.__dict__}


def dingtalk_signed_url(url: str, secret: str, now_ms: int) -> str:
    """DingTalk's "加签": HMAC-SHA256 of ``timestamp\\nsecret`` keyed by the secret, base64, URL-encoded."""
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={now_ms}&sign={quote_plus(base64.b64encode(digest))}"


# The order events that are news, and what a webhook calls them.
NEWS = {EventKind.CREATED: "opened", EventKind.REOPENED: "reopened", EventKind.ASSIGNED: "assigned",
        EventKind.ESCALATED: "escalated", EventKind.RESOLVED: "resolved"}  # fmt: skip
CLAIM = timedelta(seconds=60)  # a claimed delivery whose sender died is tried again after this
POLL_S = 1.0  # how often other processes' events are looked for (this process's wake the sender at once)
BATCH = 50
START_GRACE = timedelta(minutes=10)  # what a webhook seen for the first time still hears about


def hook_key(hook: Webhook) -> str:
    """A webhook's identity across restarts and processes: its kind and a hash of its URL (a secret)."""
    return f"{hook.kind}:{hashlib.sha256(hook.url.get_secret_value().encode()).hexdigest()[:24]}"


class Notifier:
    """Sends repair-order events to the configured robots and webhooks: a component of ``houqin run``.

    The outbox is the order event log itself (``repair_events``, written with each change of an order), so
    a crash between a change and its message loses nothing: whichever process sends next finds it. Each
    (event, webhook) is claimed by inserting its delivery row — one process wins — sent, and marked sent;
    a failed send waits its backoff, and after ``max_attempts`` is given up and logged. Only a crash
    between a robot's answer and the mark can repeat a message. ``notify`` only wakes the sender."""

    def __init__(self, settings: NotifySettings, database: Database, backoff: float = 2.0) -> None:
        self.settings = settings
        self.database = database
        self.retry = Backoff(backoff, 300.0)
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
        if not self.settings.webhooks:
            await stop.wait()
            return
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                self._wake.clear()
                try:
                    busy = await self.send_due(client)
                except Exception:  # the database away: try again at the next poll
                    log.exception("notifications: cannot read the outbox")
                    busy = False
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(_first(stop, self._wake), POLL_S)

    async def send_due(self, client: httpx.AsyncClient) -> bool:
        """Send what is due to every webhook; True if anything was tried (more may be waiting)."""
        tried = False
        for hook in self.settings.webhooks:
            key = hook_key(hook)
            after = await self._start_of(key)
            for event_id, notice in await self._due(key, hook, after):
                attempt = await self._claim(event_id, key)
                if attempt is None:
                    continue  # another process has it, or sent it
                tried = True
                await self._attempt(client, hook, key, event_id, notice, attempt)
        return tried

    async def _start_of(self, key: str) -> int:
        """The last event before ``key`` was first seen: a webhook added today hears of the last minutes,
        nothing older."""
        async with self.database.session() as session:
            start = await session.get(NotificationStart, key)
            if start is not None:
                return start.after_event
            old = RepairEvent.at < datetime.now(UTC) - START_GRACE
            latest = await session.scalar(select(func.max(RepairEvent.id)).where(old)) or 0
            try:
                session.add(NotificationStart(hook=key, after_event=latest))
                await session.commit()
            except IntegrityError:  # another process saw it first: its start holds
                await session.rollback()
                start = await session.get(NotificationStart, key)
                return start.after_event if start is not None else latest
            return latest

    async def _due(self, key: str, hook: Webhook, after: int) -> list[tuple[int, Notice]]:
        kinds = [kind for kind, news in NEWS.items() if news in hook.events]
        now = datetime.now(UTC)
        delivery = NotificationDelivery
        done = delivery.sent_at.is_not(None) | delivery.gave_up | (delivery.not_before > now)
        settled = select(delivery.id).where(delivery.event_id == RepairEvent.id, delivery.hook == key, done)
        query = (
            select(RepairEvent.id, RepairEvent.kind, RepairOrder, User.username)
            .join(RepairOrder, RepairOrder.id == RepairEvent.order_id)
            .outerjoin(User, User.id == RepairOrder.assignee_id)
            .where(RepairEvent.id > after, RepairEvent.kind.in_(kinds), ~settled.exists())
            .order_by(RepairEvent.id)
            .limit(BATCH)
        )
        async with self.database.session() as session:
            rows = (await session.execute(query)).all()
        return [(event_id, _notice(NEWS[kind], order, assignee, event_id)) for event_id, kind, order, assignee in rows]

    async def _claim(self, event_id: int, key: str) -> int | None:
        """This process's attempt number at (event, webhook), or None if it is not this process's to send."""
        now = datetime.now(UTC)
        async with self.database.session() as session:
            try:
                async with session.begin():
                    session.add(NotificationDelivery(event_id=event_id, hook=key, attempts=1, not_before=now + CLAIM))
                return 1
            except IntegrityError:
                pass
        async with self.database.session() as session, session.begin():
            claimed = await session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.event_id == event_id, NotificationDelivery.hook == key)
                .where(NotificationDelivery.sent_at.is_(None), NotificationDelivery.gave_up.is_(False))
                .where(NotificationDelivery.not_before <= now)
                .values(attempts=NotificationDelivery.attempts + 1, not_before=now + CLAIM)
                .returning(NotificationDelivery.attempts)
            )
            return claimed.scalar()

    async def _attempt(
        self, client: httpx.AsyncClient, hook: Webhook, key: str, event_id: int, notice: Notice, attempt: int
    ) -> None:
        try:
            await self._send(client, hook, notice)
        except (httpx.HTTPError, RuntimeError) as exc:
            last = attempt >= self.settings.max_attempts
            retry_at = datetime.now(UTC) + timedelta(seconds=self.retry.delay(attempt))
            error = str(exc)[:500] or type(exc).__name__
            values: dict[str, object] = {"last_error": error, "gave_up": last, "not_before": retry_at}
            if last:
                self.lost += 1
                SENT.labels(hook.kind, "lost").inc()
                log.error("%s notification not delivered after %d attempts: %s", hook.kind, attempt,
                          " | ".join(notice.lines()))  # fmt: skip
            else:
                log.warning("%s notification failed (%s); attempt %d", hook.kind, exc, attempt)
        else:
            self.sent += 1
            SENT.labels(hook.kind, "sent").inc()
            values = {"sent_at": datetime.now(UTC), "last_error": ""}
        async with self.database.session() as session, session.begin():
            await session.execute(
                update(NotificationDelivery)
                .where(NotificationDelivery.event_id == event_id, NotificationDelivery.hook == key)
                .values(**values)
            )

    async def _send(self, client: httpx.AsyncClient, hook: Webhook, notice: Notice) -> None:
        url = hook.url.get_secret_value()
        if hook.kind == "wecom":
            body = wecom_body(notice)
        elif hook.kind == "dingtalk":
            body = dingtalk_body(notice)
            if hook.secret is not None:
                url = dingtalk_signed_url(url, hook.secret.get_secret_value(), int(time.time() * 1000))
        else:
            body = json_body(notice)
        response = await client.post(url, json=body)
        response.raise_for_status()
        if hook.kind in {"wecom", "dingtalk"}:
            answer = response.json()
            if answer.get("errcode", 0) != 0:
                raise RuntimeError(f"robot refused: {answer.get('errcode')} {answer.get('errmsg', '')}")


def _notice(news: str, order: RepairOrder, assignee: str | None, event_id: int) -> Notice:
    location = " ".join(str(part) for part in (order.building, order.room) if part)
    return Notice(news, order.number, order.title, order.priority, order.category, location, order.team,
                  assignee, f"{order.due_at:%Y-%m-%d %H:%M} UTC", event_id)  # fmt: skip


async def _first(*events: asyncio.Event) -> None:
    """Returns when any of ``events`` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
