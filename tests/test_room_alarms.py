"""Room alarms leave houqin (SQLite and PostgreSQL): the dorm system's webhook hears of every notice the
power policy writes, signed, once — with two senders at once too; the staff robot gets the day's summary
(locked rooms, rooms in overdraft, cut off, low) once, from its time on."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import update

from houqin.billing.alarms import RoomAlarms
from houqin.billing.ledger import ensure_wallets
from houqin.inventory import Inventory
from houqin.settings import DormWebhook, NotifySettings, Webhook
from houqin.store import Database
from houqin.store.tables import Wallet
from tests.test_notifier import serve
from tests.test_room_policy import SHANGHAI, Room, policy_for


class DormSystem:
    """The school's dorm system and a WeCom robot: what each was sent, and whether the signature held."""

    def __init__(self) -> None:
        self.alarms: list[dict[str, Any]] = []
        self.signed: list[bool] = []
        self.robot: list[dict[str, Any]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/dorm", self.dorm)
        app.router.add_post("/cgi-bin/webhook/send", self.wecom)
        return app

    async def dorm(self, request: web.Request) -> web.Response:
        raw = await request.read()
        expected = "sha256=" + hmac.new(b"dorm-key", raw, hashlib.sha256).hexdigest()
        self.signed.append(hmac.compare_digest(request.headers.get("X-Houqin-Signature", ""), expected))
        self.alarms.append(await request.json())
        return web.Response(status=204)

    async def wecom(self, request: web.Request) -> web.Response:
        self.robot.append(await request.json())
        return web.json_response({"errcode": 0, "errmsg": "ok"})


async def test_alarms_reach_the_dorm_system_and_the_summary_the_robot(
    database: Database, demo_inventory: Inventory
) -> None:
    system = DormSystem()
    runner, port = await serve(system.app())
    base = f"http://127.0.0.1:{port}"
    settings = NotifySettings(
        dorm_webhooks=[DormWebhook(url=SecretStr(f"{base}/dorm"), secret=SecretStr("dorm-key"))],
        webhooks=[Webhook(kind="wecom", url=SecretStr(f"{base}/cgi-bin/webhook/send?key=k"), events=["daily_summary"])],
        summary_at=time(8, 0),
    )
    policy = policy_for(database, demo_inventory, low_balance_fen=[1000])
    rooms = {name: Room(database, policy, name) for name in ("D1-101", "D1-102", "D1-103")}
    await ensure_wallets(database, list(rooms))
    now = datetime.now(UTC)
    await rooms["D1-101"].move(5000, now)
    await rooms["D1-101"].move(-4500, now)  # low
    await rooms["D1-102"].move(-300, now)  # in overdraft: cut
    first, second = (RoomAlarms(settings, database, SHANGHAI, backoff=0.05) for _ in range(2))
    async with httpx.AsyncClient(timeout=10) as client:
        # The last 07:59 in Shanghai before the alarms: after midnight there (16:00 UTC on) today's is hours
        # ahead, and a sender asked at a time before its notices were made rightly takes them for old.
        local = now.astimezone(SHANGHAI)
        day = local.date() - timedelta(days=1 if local.time() < time(7, 59) else 0)
        morning = datetime.combine(day, time(7, 59), SHANGHAI).astimezone(UTC)
        await asyncio.gather(first.send_due(client, morning), second.send_due(client, morning))
        told = sorted((alarm["room"], alarm["kind"]) for alarm in system.alarms)
        assert told == [("D1-101", "low_balance"), ("D1-102", "cut_off")] and all(system.signed)
        assert len({alarm["event_id"] for alarm in system.alarms}) == 2 and system.robot == []  # before 08:00

        await rooms["D1-102"].move(1000, now)  # paid: restored (still low)
        async with database.session() as session:
            await session.execute(update(Wallet).where(Wallet.room == "D1-103").values(locked=True))
            await session.commit()
        eight = morning + timedelta(minutes=2)
        for _ in range(2):
            await asyncio.gather(first.send_due(client, eight), second.send_due(client, eight))
    await runner.cleanup()
    assert [alarm["kind"] for alarm in system.alarms].count("restored") == 1 and len(system.alarms) == 3
    [summary] = system.robot  # once, from two senders asked twice
    content = summary["markdown"]["content"]
    assert "Dorm power daily summary" in content and "Locked (1): D1-103" in content
    assert "Low (2): D1-101, D1-102" in content and "In overdraft (0)" in content  # D1-102 paid 10 of 13
    assert first.sent + second.sent == 4
