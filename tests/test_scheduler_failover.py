"""The scheduler's leader SIGKILLed just before a bell: three real ``houqin run --role scheduler`` processes
on one PostgreSQL; another process takes the lease within 10 s and the bell, due during the failover,
rings once (played late within the grace) or is recorded missed — never twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from houqin.inventory import load_inventory
from houqin.schedules.book import ScheduleBook
from houqin.schedules.calendar import BUILTIN_DAY_TYPES
from houqin.schedules.model import ScheduleIn
from houqin.store import Database
from houqin.store.tables import DeviceCommand, ScheduleFiring, SchedulerLease
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


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scheduler(tmp_path: Path, name: str, url: str) -> subprocess.Popen[bytes]:
    data = tmp_path / name
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(data), "HOUQIN_INVENTORY": str(tmp_path / "devices.yaml"),
            "HOUQIN_DATABASE_URL": url, "HOUQIN_LOG_LEVEL": "INFO"}  # fmt: skip
    log = (data / "houqin.log").open("wb")
    return subprocess.Popen([*HOUQIN, "run", "--role", "scheduler"], cwd=data, env=env, stdout=log, stderr=log)


async def leader(database: Database) -> str | None:
    async with database.session() as session:
        row = await session.get(SchedulerLease, "scheduler")
        if row is None or row.expires_at is None or row.expires_at <= datetime.now(UTC):
            return None
        return row.holder


async def test_a_bell_due_while_the_leader_is_killed_rings_once(
    shared: tuple[Database, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    database, url = shared
    (tmp_path / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    processes += [scheduler(tmp_path, name, url) for name in ("one", "two", "three")]
    deadline = time.monotonic() + 90
    while (holder := await leader(database)) is None:
        assert time.monotonic() < deadline, "no scheduler took the lease"
        await asyncio.sleep(0.2)

    # The bell: the next whole minute at least 20 s away (a schedule's times are minutes).
    now = datetime.now(SHANGHAI)
    bell = (now + timedelta(seconds=80)).replace(second=0, microsecond=0)
    if bell - now > timedelta(seconds=80):
        bell -= timedelta(minutes=1)
    book = ScheduleBook(database, load_inventory(tmp_path / "devices.yaml"), SHANGHAI)
    spec = {"name": "bell", "zone": "bells", "day_types": list(BUILTIN_DAY_TYPES),
            "entries": [{"at": bell.strftime("%H:%M"), "action": "play", "programme": "bell", "duration_s": 60}]}  # fmt: skip
    await book.save(ScheduleIn.model_validate(spec), by="test", now=datetime.now(UTC))

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
    async with database.session() as session:
        firings = (await session.execute(select(ScheduleFiring).where(ScheduleFiring.zone == "bells"))).scalars()
        due = [f for f in firings if f.due_at == bell.astimezone(UTC) and f.cause.startswith("schedule:")]
        commands = (await session.execute(select(DeviceCommand).where(DeviceCommand.device == "pa-1"))).scalars()
        plays = [c for c in commands if c.action == "play"]
    print(f"scheduler_failover_s={failover:.2f} outcome={[f.outcome for f in due]} plays={len(plays)}")
    assert len(due) == 1, [(f.key, f.outcome) for f in due]
    assert due[0].outcome in ("fired", "missed")
    assert len(plays) == (1 if due[0].outcome == "fired" else 0), plays
    assert new is not None and f":{victim.pid}:" not in new
