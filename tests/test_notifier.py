"""Notifications to a local HTTP server standing in for the WeCom and DingTalk robots: the payloads have
the published shapes, DingTalk's signature checks out, and a failed delivery is retried."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import select, update

from houqin.accounts import NewAccount, add_account
from houqin.inventory import Inventory
from houqin.repairs.faults import OrderChange
from houqin.repairs.notifier import Notifier
from houqin.repairs.orders import NewOrder, RepairDesk
from houqin.settings import NotifySettings, RepairSettings, Webhook
from houqin.store import Database
from houqin.store.tables import NotificationDelivery, Priority, RepairEvent, Role
from tests.api_client import PASSWORD


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """``app`` on a free local port: its runner (to clean up) and the port."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


class Robots:
    """Answers like the robots do; the first WeCom call fails with 45009 (rate limited)."""

    def __init__(self) -> None:
        self.received: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = {
            "wecom": [],
            "dingtalk": [],
            "json": [],
        }
        self.wecom_calls = 0
        self.port = 0

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/cgi-bin/webhook/send", self.wecom)
        app.router.add_post("/robot/send", self.dingtalk)
        app.router.add_post("/hook", self.json_hook)
        runner, self.port = await serve(app)
        return runner

    async def wecom(self, request: web.Request) -> web.Response:
        self.wecom_calls += 1
        if self.wecom_calls == 1:
            return web.json_response({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.received["wecom"].append((dict(request.query), await request.json()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def dingtalk(self, request: web.Request) -> web.Response:
        self.received["dingtalk"].append((dict(request.query), await request.json()))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def json_hook(self, request: web.Request) -> web.Response:
        self.received["json"].append((dict(request.query), await request.json()))
        return web.Response(status=204)


async def test_robots_get_their_formats_signed_and_retried(database: Database, demo_inventory: Inventory) -> None:
    robots = Robots()
    runner = await robots.start()
    base = f"http://127.0.0.1:{robots.port}"
    settings = NotifySettings(webhooks=[
        Webhook(kind="wecom", url=SecretStr(f"{base}/cgi-bin/webhook/send?key=abc")),
        Webhook(kind="dingtalk", url=SecretStr(f"{base}/robot/send?access_token=tok"), secret=SecretStr("SECxyz")),
        Webhook(kind="json", url=SecretStr(f"{base}/hook"), events=["assigned"]),
    ])  # fmt: skip
    async with database.session() as session:
        await add_account(session, NewAccount("liu", Role.WORKER, PASSWORD, team="plumbing"), demo_inventory)
        desk = RepairDesk(demo_inventory, RepairSettings(), ZoneInfo("Asia/Shanghai"))
        order = await desk.open(session, NewOrder("water flowing at night", "plumbing", Priority.URGENT,
                                                  building="dorm-2", room="D2-105"), datetime.now(UTC))  # fmt: skip
        await session.commit()
    notifier = Notifier(settings, database, backoff=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await notifier.notify(OrderChange(order, "opened"))
        deadline = time.monotonic() + 10
        while notifier.sent < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
        await runner.cleanup()
    assert notifier.sent == 3 and notifier.lost == 0 and robots.wecom_calls == 2  # retried after the 45009
    [(query, wecom)] = robots.received["wecom"]
    assert query == {"key": "abc"} and wecom["msgtype"] == "markdown"
    assert set(wecom["markdown"]) == {"content"} and order.number in wecom["markdown"]["content"]
    assert "dorm-2 D2-105" in wecom["markdown"]["content"] and "liu" in wecom["markdown"]["content"]
    [(query, dingtalk)] = robots.received["dingtalk"]
    assert dingtalk["msgtype"] == "markdown" and set(dingtalk["markdown"]) == {"title", "text"}
    expected = hmac.new(b"SECxyz", f"{query['timestamp']}\nSECxyz".encode(), hashlib.sha256).digest()
    assert query["access_token"] == "tok" and base64.b64decode(query["sign"]) == expected
    assert abs(int(query["timestamp"]) - time.time() * 1000) < 60_000
    # That hook asked for assignments only: the order was given to liu, the plumbing team's worker.
    [(_, assigned)] = robots.received["json"]
    assert assigned["event"] == "repair_order.assigned" and assigned["assignee"] == "liu"


class Receiver:
    """A JSON webhook that records every event it is sent; ``fail`` answers 500 to everything."""

    def __init__(self) -> None:
        self.events: list[int] = []
        self.fail = False
        self.port = 0

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        runner, self.port = await serve(app)
        return runner

    async def hook(self, request: web.Request) -> web.Response:
        if self.fail:
            return web.Response(status=500)
        self.events.append((await request.json())["event_id"])
        return web.Response(status=204)


async def open_orders(database: Database, inventory: Inventory, count: int) -> None:
    """Orders opened and committed with nobody told: as if the process had died right after."""
    desk = RepairDesk(inventory, RepairSettings(), ZoneInfo("Asia/Shanghai"))
    async with database.session() as session:
        for n in range(count):
            await desk.open(session, NewOrder(f"leak {n}", "plumbing", Priority.HIGH, building="dorm-1"),
                            datetime.now(UTC))  # fmt: skip
        await session.commit()


async def until(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


async def run_until(sender: Notifier, check: Callable[[], bool]) -> None:
    """Run ``sender`` until ``check`` holds, and a poll longer: nothing more may come."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await until(check)
        await asyncio.sleep(1.5)
    finally:
        stop.set()
        await task


async def test_the_event_log_is_the_outbox(database: Database, demo_inventory: Inventory) -> None:
    """Orders committed while no sender ran are told once it runs; two senders at once tell each event
    once; a restarted sender repeats nothing; a webhook that keeps failing is given up and logged, not
    retried for ever; a webhook configured later hears nothing from before its last ten minutes."""
    receiver = Receiver()
    runner = await receiver.start()
    hook = Webhook(kind="json", url=SecretStr(f"http://127.0.0.1:{receiver.port}/hook"), events=["opened"])
    settings = NotifySettings(webhooks=[hook], max_attempts=2)
    await open_orders(database, demo_inventory, 3)
    senders = [Notifier(settings, database, backoff=0.05) for _ in range(2)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(sender.run(stop)) for sender in senders]
    try:
        await until(lambda: len(receiver.events) >= 3)
        await open_orders(database, demo_inventory, 5)
        await until(lambda: len(receiver.events) >= 8)
        await asyncio.sleep(1.5)  # a poll of both: nothing more
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert len(receiver.events) == 8 and len(set(receiver.events)) == 8
    assert sum(sender.sent for sender in senders) == 8

    again = Notifier(settings, database, backoff=0.05)
    receiver.fail = True
    await open_orders(database, demo_inventory, 1)
    await run_until(again, lambda: again.lost == 1)
    assert again.lost == 1 and again.sent == 0 and len(receiver.events) == 8  # given up after two attempts
    async with database.session() as session:
        [delivery] = (await session.execute(
            select(NotificationDelivery).where(NotificationDelivery.gave_up.is_(True))
        )).scalars().all()  # fmt: skip
        assert delivery.attempts == 2 and "500" in delivery.last_error
        await session.execute(update(RepairEvent).values(at=datetime.now(UTC) - timedelta(hours=1)))
        await session.commit()

    receiver.fail = False
    late = Webhook(kind="json", url=SecretStr(f"http://127.0.0.1:{receiver.port}/hook?late=1"), events=["opened"])
    newcomer = Notifier(NotifySettings(webhooks=[hook, late]), database, backoff=0.05)
    await open_orders(database, demo_inventory, 1)
    try:
        await run_until(newcomer, lambda: newcomer.sent == 2)
    finally:
        await runner.cleanup()
    # The new order to both; nothing old to the late webhook, nothing again to the first.
    assert newcomer.sent == 2 and len(receiver.events) == 10 and receiver.events[-1] == receiver.events[-2]
