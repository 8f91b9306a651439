"""Singletons and the outbox across a SIGKILL, with three real ``houqin run`` processes on one PostgreSQL:
the scheduler's leader killed just before a bell — another takes the lease within 10 s and the bell, due
during the failover, rings once (played late within the grace) or is recorded missed, never twice; the
process sending a repair order's webhook killed while the receiver holds the request — another sends it
once its claim runs out, with the same ``event_id``, and nothing is sent a third time."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psutil
from sqlalchemy import select

from houqin.inventory import Inventory, load_inventory
from houqin.repairs.orders import NewOrder, RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.calendar import BUILTIN_DAY_TYPES
from houqin.schedules.model import ScheduleIn
from houqin.settings import RepairSettings
from houqin.store import Database
from houqin.store.tables import DeviceCommand, NotificationDelivery, ScheduleFiring, SchedulerLease
from tests.live_demo import HOUQIN

SHANGHAI = ZoneInfo("Asia/Shanghai")
INVENTORY = """\
site: {name: Failover campus, timezone: Asia/Shanghai}
teams: [{id: media, name: Media, categories: [broadcast]}]
devices:
  - {id: pa-1, model: mqtt-broadcast, topic: failover/pa-1/state, building: A}
zones:
  - {id: bells, kind: broadcast, devices: [pa-1]}
"""


def houqin(tmp_path: Path, name: str, url: str, role: str = "scheduler", **extra: str) -> subprocess.Popen[bytes]:
    data = tmp_path / name
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(data), "HOUQIN_INVENTORY": str(tmp_path / "devices.yaml"),
            "HOUQIN_DATABASE_URL": url, "HOUQIN_LOG_LEVEL": "INFO", **extra}  # fmt: skip
    log = (data / "houqin.log").open("wb")
    return subprocess.Popen([*HOUQIN, "run", "--role", role], cwd=data, env=env, stdout=log, stderr=log)


async def leader(database: Database) -> str | None:
    async with database.session() as session:
        row = await session.get(SchedulerLease, "scheduler")
        if row is None or row.expires_at is None or row.expires_at <= datetime.now(UTC):
            return None
        return row.holder


async def schedule_bell(database: Database, inventory: Inventory) -> datetime:
    """A bell for zone ``bells`` at the next whole minute at least 20 s away (a schedule's times are
    minutes): when it is due, in Shanghai time."""
    now = datetime.now(SHANGHAI)
    bell = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    if bell - now > timedelta(seconds=80):
        bell -= timedelta(minutes=1)
    book = ScheduleBook(database, inventory, SHANGHAI)
    entry = {"at": bell.strftime("%H:%M"), "action": "play", "programme": "bell", "duration_s": 60}
    spec = {"name": "bell", "zone": "bells", "day_types": list(BUILTIN_DAY_TYPES), "entries": [entry]}
    await book.save(ScheduleIn.model_validate(spec), by="test", now=datetime.now(UTC))
    return bell


async def bell_outcome(database: Database, bell: datetime) -> tuple[list[ScheduleFiring], list[DeviceCommand]]:
    """The scheduled firings recorded for ``bell``, and the ``play`` commands sent to pa-1."""
    async with database.session() as session:
        firings = (await session.execute(select(ScheduleFiring).where(ScheduleFiring.zone == "bells"))).scalars()
        due = [f for f in firings if f.due_at == bell.astimezone(UTC) and f.cause.startswith("schedule:")]
        commands = (await session.execute(select(DeviceCommand).where(DeviceCommand.device == "pa-1"))).scalars()
        plays = [c for c in commands if c.action == "play"]
    return due, plays


async def test_a_bell_due_while_the_leader_is_killed_rings_once(
    shared: tuple[Database, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    database, url = shared
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    processes += [houqin(tmp_path, name, url) for name in ("one", "two", "three")]
    deadline = time.monotonic() + 90
    while (holder := await leader(database)) is None:
        assert time.monotonic() < deadline, "no scheduler took the lease"
        await asyncio.sleep(0.2)

    bell = await schedule_bell(database, load_inventory(tmp_path / "devices.yaml"))
    await asyncio.sleep(max(0.0, (bell - timedelta(seconds=1.0) - datetime.now(SHANGHAI)).total_seconds()))
    holder = await leader(database)
    assert holder is not None
    victim = next(p for p in processes if f":{p.pid}:" in holder)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()
    while (new := await leader(database)) in (None, holder):
        assert time.monotonic() - killed_at < 15, "no process took the dead leader's lease"
        await asyncio.sleep(0.1)
    failover = time.monotonic() - killed_at
    assert failover <= 10.5, failover

    await asyncio.sleep(3)  # the new leader's first passes
    due, plays = await bell_outcome(database, bell)
    print(f"scheduler_failover_s={failover:.2f} outcome={[f.outcome for f in due]} plays={len(plays)}")
    assert len(due) == 1, [(f.key, f.outcome) for f in due]
    assert due[0].outcome in ("fired", "missed")
    assert len(plays) == (1 if due[0].outcome == "fired" else 0), plays
    assert new is not None and f":{victim.pid}:" not in new


class Receiver:
    """A JSON webhook endpoint: while ``armed`` (from the start unless told otherwise) it holds the next
    request it gets without answering (its sender is killed meanwhile) and disarms; it answers 200 to every
    other. It records each request's sender (pid) and body."""

    def __init__(self, armed: bool = True) -> None:
        self.requests: list[tuple[int, dict[str, object]]] = []
        self.held = asyncio.Event()
        self.armed = armed
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid = sender_of(writer.get_extra_info("peername")[1], self.port)
        try:
            while True:  # one connection carries several requests (keep-alive)
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
                body = orjson.loads(await reader.readexactly(int(length.group(1)) if length else 0))
                self.requests.append((pid, body))
                if self.armed:
                    self.armed = False
                    self.held.set()
                    await reader.read()  # until the sender is gone
                    return
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def sender_of(port: int, server_port: int) -> int:
    """The pid whose TCP connection to the receiver leaves from ``port``."""
    for connection in psutil.net_connections("tcp"):
        remote = connection.raddr
        if connection.laddr.port == port and remote and remote.port == server_port and connection.pid:
            return connection.pid
    raise AssertionError(f"no process holds the connection from port {port}")


async def open_order(database: Database, tmp_path: Path, title: str) -> None:
    desk = RepairDesk(load_inventory(tmp_path / "devices.yaml"), RepairSettings(), SHANGHAI)
    async with database.session() as session:
        await desk.open(session, NewOrder(title, "broadcast", building="A"), datetime.now(UTC))
        await session.commit()


async def test_a_webhook_whose_sender_is_killed_mid_request_is_sent_by_another_process(
    shared: tuple[Database, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    database, url = shared
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    hooks = orjson.dumps([{"kind": "json", "url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["opened"]}])
    try:
        processes += [houqin(tmp_path, name, url, HOUQIN_NOTIFY__WEBHOOKS=hooks.decode())
                      for name in ("one", "two", "three")]  # fmt: skip
        await asyncio.sleep(5)  # the processes are up and have seen the webhook (it hears of what follows)
        await open_order(database, tmp_path, "PA silent in building A")
        await asyncio.wait_for(receiver.held.wait(), 60)
        victim, first = receiver.requests[0]
        assert victim in {p.pid for p in processes}
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        # Another order while the claim of the first is still the dead process's: sent at once, by a survivor.
        await open_order(database, tmp_path, "PA hums in building A")
        deadline = time.monotonic() + 100
        while len({body["event_id"] for _, body in receiver.requests}) < 2 or len(receiver.requests) < 3:
            assert time.monotonic() < deadline, receiver.requests
            await asyncio.sleep(0.2)
        resent_after = time.monotonic() - killed_at
        await asyncio.sleep(3)  # nothing more comes
        events = [body["event_id"] for _, body in receiver.requests]
        print(f"webhook resent {resent_after:.1f} s after the kill; requests by event: {events}")
        assert events.count(first["event_id"]) == 2  # once held by the killed sender, once sent by another
        assert len(events) == 3 and len(set(events)) == 2, events
        assert victim not in {pid for pid, _ in receiver.requests[1:]}
        async with database.session() as session:
            rows = (await session.execute(select(NotificationDelivery))).scalars().all()
        assert {(row.event_id, row.sent_at is not None) for row in rows} == {(e, True) for e in set(events)}
        assert sorted(row.attempts for row in rows) == [1, 2]
    finally:
        server.close()
