"""Messages out of houqin — to WeCom and DingTalk group robots and to JSON webhooks — from event logs that
are written in the transaction that makes the event (repair events, room notices), so a crash loses none.

``Deliveries`` keeps, per (source, event, webhook), a row in the SQL store: inserting it claims the
delivery (one process wins, so any number of processes may send), then it is marked sent, or waits its
backoff, or is given up after the last attempt. A claim whose sender died is taken again after ``CLAIM``.
Only a crash between the receiver's answer and the mark can repeat a message: JSON bodies carry
``event_id`` so a receiver can drop a repeat. ``Robot`` posts a ``Message`` in each robot's format.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote_plus

import httpx
from pydantic import SecretStr
from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from houqin.backoff import Backoff
from houqin.store import Database
from houqin.store.tables import NotificationDelivery, NotificationStart
from houqin.ticker import run_every

log = logging.getLogger(__name__)

CLAIM = timedelta(seconds=60)  # a claimed delivery whose sender died is tried again after this
START_GRACE = timedelta(minutes=10)  # what a webhook seen for the first time still hears about
# Events older than this are no longer news: not sent (what happened while every sender was away longer).
RETAIN = timedelta(days=1)


def url_key(kind: str, url: str) -> str:
    """A webhook's identity across restarts and processes: its kind and a hash of its URL (a secret)."""
    return f"{kind}:{hashlib.sha256(url.encode()).hexdigest()[:24]}"


Outcome = Literal["sent", "failed", "lost"]


@dataclass(frozen=True)
class Message:
    """What a robot shows (a headline and lines) and what a JSON webhook gets (``body``)."""

    headline: str
    lines: list[str]
    body: dict[str, Any]


@dataclass(frozen=True)
class Robot:
    """Where a message goes: ``wecom`` or ``dingtalk`` (markdown), or ``json`` (the body as given, signed
    with HMAC-SHA256 in ``X-Houqin-Signature`` when it has a secret)."""

    kind: str
    url: str
    secret: str | None = None

    @classmethod
    def of(cls, kind: str, url: SecretStr, secret: SecretStr | None) -> Robot:
        """From settings, where the URL and the secret are kept secret."""
        return cls(kind, url.get_secret_value(), secret.get_secret_value() if secret is not None else None)

    @property
    def key(self) -> str:
        return url_key(self.kind, self.url)

    async def post(self, client: httpx.AsyncClient, headline: str, lines: list[str], body: dict[str, Any]) -> None:
        """Raises ``httpx.HTTPError``, or ``RuntimeError`` when a robot refuses (HTTP 200 with an errcode)."""
        url, headers = self.url, {}
        if self.kind == "wecom":  # markdown, at most 4,096 bytes
            text = f"### {headline}\n" + "\n".join(f"> {line}" for line in lines)
            content = text.encode()[:4096].decode(errors="ignore")
            payload: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": content}}
        elif self.kind == "dingtalk":  # markdown with a title; signed ("加签") when it has a secret
            text = f"#### {headline}\n\n" + "\n\n".join(f"- {line}" for line in lines)
            payload = {"msgtype": "markdown", "markdown": {"title": headline, "text": text}}
            if self.secret is not None:
                url = dingtalk_signed_url(url, self.secret, int(time.time() * 1000))
        else:
            payload = body
            if self.secret is not None:
                raw = json.dumps(body, ensure_ascii=False, default=str).encode()
                signature = hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
                headers = {"X-Houqin-Signature": f"sha256={signature}", "Content-Type": "application/json"}
                response = await client.post(url, content=raw, headers=headers)
                response.raise_for_status()
                return
        response = await client.post(url, json=payload, headers=headers)
        response.raise_for_status()
        if self.kind in {"wecom", "dingtalk"}:
            answer = response.json()
            if answer.get("errcode", 0) != 0:
                raise RuntimeError(f"robot refused: {answer.get('errcode')} {answer.get('errmsg', '')}")


def dingtalk_signed_url(url: str, secret: str, now_ms: int) -> str:
    """DingTalk's "加签": HMAC-SHA256 of ``timestamp\\nsecret`` keyed by the secret, base64, URL-encoded."""
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={now_ms}&sign={quote_plus(base64.b64encode(digest))}"


class Deliveries:
    """The delivery rows of one source (``repair``, ``room``, ``summary``)."""

    def __init__(self, database: Database, source: str) -> None:
        self.database = database
        self.source = source

    def unsettled(self, event_id: InstrumentedAttribute[int], hook: str, now: datetime) -> ColumnElement[bool]:
        """True for an event not sent, not given up, and not claimed or waiting: for the caller's query."""
        row = NotificationDelivery
        done = row.sent_at.is_not(None) | row.gave_up | (row.not_before > now)
        settled = select(row.id).where(row.source == self.source, row.event_id == event_id, row.hook == hook, done)
        return ~settled.exists()

    async def start_of(self, hook: str, latest: Select[Any]) -> int:
        """The last event before ``hook`` was first seen (``latest``: the source's newest event older than
        the start grace): a webhook added today hears of the last minutes, nothing older."""
        key = f"{self.source}:{hook}"
        async with self.database.session() as session:
            start = await session.get(NotificationStart, key)
            if start is not None:
                return start.after_event
            after = int(await session.scalar(latest) or 0)
            try:
                session.add(NotificationStart(hook=key, after_event=after))
                await session.commit()
            except IntegrityError:  # another process saw it first: its start holds
                await session.rollback()
                start = await session.get(NotificationStart, key)
                return start.after_event if start is not None else after
            return after

    async def claim(self, event_id: int, hook: str) -> int | None:
        """This process's attempt number at (event, webhook), or None if it is not this process's to send."""
        now = datetime.now(UTC)
        async with self.database.session() as session:
            try:
                async with session.begin():
                    session.add(NotificationDelivery(source=self.source, event_id=event_id, hook=hook, attempts=1,
                                                     not_before=now + CLAIM))  # fmt: skip
                return 1
            except IntegrityError:
                pass
        row = NotificationDelivery
        async with self.database.session() as session, session.begin():
            claimed = await session.execute(
                update(row)
                .where(row.source == self.source, row.event_id == event_id, row.hook == hook)
                .where(row.sent_at.is_(None), row.gave_up.is_(False), row.not_before <= now)
                .values(attempts=row.attempts + 1, not_before=now + CLAIM)
                .returning(row.attempts)
            )
            return claimed.scalar()

    async def attempt(
        self, client: httpx.AsyncClient, robot: Robot, event_id: int, attempt: int, message: Message,
        max_attempts: int, retry: Backoff,
    ) -> Outcome:  # fmt: skip
        """Post ``message`` (claimed: this is ``attempt``) and record how it went: sent; failed, to be tried
        again after its backoff; or lost, after the last attempt (logged with its text)."""
        try:
            await robot.post(client, message.headline, message.lines, message.body)
            error = None
        except (httpx.HTTPError, RuntimeError) as exc:
            error = str(exc) or type(exc).__name__
        now = datetime.now(UTC)
        outcome: Outcome = "sent" if error is None else "lost" if attempt >= max_attempts else "failed"
        if error is None:
            values: dict[str, object] = {"sent_at": now, "last_error": ""}
        else:
            values = {"last_error": error[:500], "gave_up": outcome == "lost",
                      "not_before": now + timedelta(seconds=retry.delay(attempt))}  # fmt: skip
        if outcome == "lost":
            log.error("%s message (%s) not delivered after %d attempts: %s", robot.kind, self.source, attempt,
                      " | ".join(message.lines))  # fmt: skip
        elif outcome == "failed":
            log.warning("%s message (%s) failed (%s); attempt %d", robot.kind, self.source, error, attempt)
        row = NotificationDelivery
        async with self.database.session() as session, session.begin():
            await session.execute(
                update(row)
                .where(row.source == self.source, row.event_id == event_id, row.hook == robot.key)
                .values(**values)
            )
        return outcome


async def poll_until(
    stop: asyncio.Event, wake: asyncio.Event, every: float, send: Callable[[httpx.AsyncClient], Awaitable[bool]]
) -> None:
    """Call ``send`` until ``stop``: again at once while it finds work, else after ``every`` seconds or when
    ``wake`` is set. A failing database is logged and tried again at the next poll."""
    async with httpx.AsyncClient(timeout=10) as client:

        async def tick() -> None:
            if await send(client):
                wake.set()  # more may be waiting

        await run_every(stop, every, tick, "outbox", wake=wake)
