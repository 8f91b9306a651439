"""Telling maintenance groups about repair orders: WeCom and DingTalk group robots, or a JSON webhook.

Messages wait in a bounded queue and are sent by one task, each retried with exponential backoff (a
robot answers HTTP 200 with a non-zero ``errcode`` when it refuses: that is a failure too, e.g. 45009 when
rate-limited). A message that still fails after ``max_attempts`` is logged with its text, so nobody has
to guess what was not delivered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
from prometheus_client import Counter

from houqin.backoff import Backoff
from houqin.repairs.faults import OrderChange
from houqin.settings import NotifySettings, Webhook
from houqin.store import Database
from houqin.store.tables import User

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


class Notifier:
    """A component of ``houqin run``; ``notify`` never blocks the caller."""

    def __init__(
        self, settings: NotifySettings, database: Database, backoff: float = 2.0, queue_size: int = 10_000
    ) -> None:
        self.settings = settings
        self.database = database
        self.retry = Backoff(backoff, 300.0)
        self._queue: asyncio.Queue[tuple[Webhook, Notice]] = asyncio.Queue(queue_size)
        self.sent = 0
        self.lost = 0

    @property
    def name(self) -> str:
        return "notifier"

    async def notify(self, change: OrderChange) -> None:
        news = change.change if change.change in HEADLINES else None
        hooks = [hook for hook in self.settings.webhooks if news in hook.events]
        if news is None or not hooks:
            return
        order = change.order
        assignee = None
        if order.assignee_id is not None:
            async with self.database.session() as session:
                user = await session.get(User, order.assignee_id)
                assignee = user.username if user else None
        location = " ".join(str(part) for part in (order.building, order.room) if part)
        notice = Notice(news, order.number, order.title, order.priority, order.category, location, order.team,
                        assignee, f"{order.due_at:%Y-%m-%d %H:%M} UTC")  # fmt: skip
        for hook in hooks:
            try:
                self._queue.put_nowait((hook, notice))
            except asyncio.QueueFull:
                self.lost += 1
                SENT.labels(hook.kind, "lost").inc()
                log.error("notification queue full; not sent to %s: %s", hook.kind, " | ".join(notice.lines()))

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set() or not self._queue.empty():
                getting = asyncio.create_task(self._queue.get())
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait({getting, stopping}, return_when="FIRST_COMPLETED")
                stopping.cancel()
                if not getting.done():
                    getting.cancel()
                    continue
                hook, notice = getting.result()
                await self._deliver(client, hook, notice, stop)

    async def _deliver(self, client: httpx.AsyncClient, hook: Webhook, notice: Notice, stop: asyncio.Event) -> None:
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                await self._send(client, hook, notice)
                self.sent += 1
                SENT.labels(hook.kind, "sent").inc()
                return
            except (httpx.HTTPError, RuntimeError) as exc:
                if attempt == self.settings.max_attempts or stop.is_set():
                    break
                delay = self.retry.delay(attempt)
                log.warning("%s notification failed (%s); retry %d in %.0f s", hook.kind, exc, attempt, delay)
                await asyncio.sleep(delay)
        self.lost += 1
        SENT.labels(hook.kind, "lost").inc()
        log.error("%s notification not delivered after %d attempts: %s", hook.kind, self.settings.max_attempts,
                  " | ".join(notice.lines()))  # fmt: skip

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
