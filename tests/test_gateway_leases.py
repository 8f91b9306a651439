"""Gateways owned by leases, with real ``houqin run --role collect`` processes on one PostgreSQL and the
simulated buses in this test's process: the gateways are shared evenly; SIGKILL one process and the other
takes its gateways within 10 s, their devices never go unpolled longer than the lease and a poll, and a
command queued for a dead process's gateway is sent by the survivor, once; a third process joining takes
its share back gradually."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from houqin.commands import CommandQueue, CommandRequest
from houqin.inventory import load_inventory
from houqin.store import Database
from houqin.store.tables import CommandSource, DeviceCommand, GatewayLease, HouqinProcess
from tests.live_demo import HOUQIN
from tests.servers import free_port

GATEWAYS = 4
RELAYS = 2  # per gateway
POLL_S = 0.5


def inventory_text(ports: list[int]) -> str:
    lines = ["site: {name: Lease campus, timezone: Asia/Shanghai}", "gateways:"]
    lines += [f"  - {{id: bus{g}, type: rtu_over_tcp, host: 127.0.0.1, port: {port}, timeout: 0.5}}"
              for g, port in enumerate(ports)]  # fmt: skip
    lines.append("devices:")
    lines += [f"  - {{id: relay-{g}-{r}, model: generic-relay, gateway: bus{g}, unit: {r + 1}, building: b, "
              f"poll_interval: {POLL_S}}}" for g in range(GATEWAYS) for r in range(RELAYS)]  # fmt: skip
    return "\n".join(lines) + "\n"


class Buses:
    """The simulated buses, and when each device was last asked anything."""

    def __init__(self, tmp_path: Path) -> None:
        self.ports = [free_port() for _ in range(GATEWAYS)]
        self.file = tmp_path / "devices.yaml"
        self.file.write_text(inventory_text(self.ports), encoding="utf-8")
        inventory = load_inventory(self.file)
        self.devices = {device.id: SimulatedModbusDevice(device.unit or 1, inventory.model_of(device))
                        for device in inventory.devices.values()}  # fmt: skip
        for device in self.devices.values():
            device.values["relay_closed"] = True
        self.gateways = [SimulatedGateway([d for i, d in self.devices.items() if i.startswith(f"relay-{g}-")],
                                          rtu=True, port=port) for g, port in enumerate(self.ports)]  # fmt: skip
        self.inventory = inventory
        self.last_asked: dict[str, float] = {}
        self.longest_silence: dict[str, float] = {}
        self._seen: dict[str, int] = {}

    async def watch(self) -> None:
        """Sample every 20 ms for the whole test: a pause in sampling would read as a device's silence."""
        while True:
            self.sample()
            await asyncio.sleep(0.02)

    def sample(self) -> None:
        now = time.monotonic()
        for device_id, device in self.devices.items():
            if device.requests != self._seen.get(device_id):
                self._seen[device_id] = device.requests
                if device_id in self.last_asked:
                    gap = now - self.last_asked[device_id]
                    self.longest_silence[device_id] = max(self.longest_silence.get(device_id, 0.0), gap)
                self.last_asked[device_id] = now


def collector(tmp_path: Path, name: str, buses: Buses, url: str) -> subprocess.Popen[bytes]:
    data = tmp_path / name
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(data), "HOUQIN_INVENTORY": str(buses.file), "HOUQIN_DATABASE_URL": url,
            "HOUQIN_LOG_LEVEL": "INFO"}  # fmt: skip
    log = (data / "houqin.log").open("wb")
    return subprocess.Popen([*HOUQIN, "run", "--role", "collect"], cwd=data, env=env, stdout=log, stderr=log)


async def holders(database: Database) -> dict[str, str]:
    async with database.session() as session:
        rows = await session.execute(select(GatewayLease.gateway, GatewayLease.holder, GatewayLease.expires_at))
        now = datetime.now(UTC)
        return {gateway: holder for gateway, holder, expires in rows.all() if holder and expires > now}


async def wait_for(buses: Buses, condition, seconds: float, what: str) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not await condition():
        buses.sample()
        assert time.monotonic() - started < seconds, what
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_gateways_move_to_a_live_process_when_their_owner_is_killed(
    shared: tuple[Database, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    database, url = shared
    buses = Buses(tmp_path)
    for gateway in buses.gateways:
        await gateway.start()
    watching = asyncio.create_task(buses.watch())
    try:
        processes += [collector(tmp_path, "one", buses, url), collector(tmp_path, "two", buses, url)]

        async def shared_evenly() -> bool:
            held = await holders(database)
            counts = sorted(list(held.values()).count(holder) for holder in set(held.values()))
            return len(held) == GATEWAYS and counts == [GATEWAYS // 2, GATEWAYS // 2]

        await wait_for(buses, shared_evenly, 60, f"the gateways were not shared evenly: {await holders(database)}")
        await wait_for(buses, _every_device_asked(buses), 10, "a device was never polled")
        buses.longest_silence.clear()
        await asyncio.sleep(2)
        buses.sample()

        # SIGKILL the process that holds bus0 (found through the registry's pid).
        held = await holders(database)
        victim_id = held["bus0"]
        ids = {p.pid: await _process_id(database, p.pid) for p in processes}
        victim = next(p for p in processes if ids[p.pid] == victim_id)
        orphaned = sorted(g for g, h in held.items() if h == victim_id)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        queue = CommandQueue(database, buses.inventory)
        command = await queue.enqueue(CommandRequest("relay-0-1", "relay", "off", CommandSource.USER, reason="test"),
                                      datetime.now(UTC))  # fmt: skip

        async def taken_over() -> bool:
            now = await holders(database)
            return all(now.get(gateway) not in (None, victim_id) for gateway in orphaned)

        await wait_for(buses, taken_over, 15, "the dead process's gateways were not taken over")
        failover = time.monotonic() - killed_at
        assert failover <= 10.5, failover

        async def confirmed() -> bool:
            async with database.session() as session:
                row = await session.get(DeviceCommand, command.id)
                return row is not None and row.state == "confirmed"

        await wait_for(buses, confirmed, 10, "the command for the dead process's gateway was not confirmed")
        assert buses.devices["relay-0-1"].values["relay_closed"] is False
        await asyncio.sleep(2)
        buses.sample()
        worst = max(buses.longest_silence.get(f"relay-{gateway[3:]}-{r}", 0.0)
                    for gateway in orphaned for r in range(RELAYS))  # fmt: skip
        # The lease (8 s) and one poll, and the takeover itself: its round at the lease's end, the poller's
        # start and its first turn through the bus (measured 0.1-0.6 s; a loaded machine adds to it).
        assert worst <= 8.0 + POLL_S + 1.0, (worst, buses.longest_silence)
        print(f"failover_s={failover:.2f} longest_silence_s={worst:.2f}")
        async with database.session() as session:
            sends = (await session.get(DeviceCommand, command.id)).attempts  # type: ignore[union-attr]
        assert sends == 1

        # A third process joins: it gets its share, one gateway a round, and the buses stay polled.
        processes.append(collector(tmp_path, "three", buses, url))

        async def rebalanced() -> bool:
            held = await holders(database)
            counts = sorted(list(held.values()).count(holder) for holder in set(held.values()))
            return len(held) == GATEWAYS and counts == [GATEWAYS // 2, GATEWAYS // 2]

        await wait_for(buses, rebalanced, 60, f"the newcomer did not get its share: {await holders(database)}")
        await wait_for(buses, _every_device_asked(buses, within=3.0), 10, "a device went unpolled")
    finally:
        watching.cancel()
        for gateway in buses.gateways:
            await gateway.stop()


def _every_device_asked(buses: Buses, within: float = 5.0):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        now = time.monotonic()
        return all(now - buses.last_asked.get(device, -1e9) < within for device in buses.devices)

    return check


async def _process_id(database: Database, pid: int) -> str | None:
    async with database.session() as session:
        return await session.scalar(select(HouqinProcess.id).where(HouqinProcess.pid == pid))
