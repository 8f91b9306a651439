"""The command queue and the Modbus dispatcher against a simulated relay: sent once, confirmed by read-back,
retried then failed when the device does not take it, idempotent by key, resumed after a stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import func, select, update

from collectors.command_dispatcher import STALE, CommandDispatcher, ModbusCommandDispatcher
from collectors.modbus_link import ModbusLink
from collectors.ownership import GatewayOwnership
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from houqin.commands import CommandQueue, CommandRequest
from houqin.commands.handover import Sendable
from houqin.inventory import Inventory, load_inventory
from houqin.schedules.commander import Firing, ZoneCommander
from houqin.store import Database
from houqin.store.tables import CommandSource, DeviceCommand, HouqinProcess, ScheduleFiring

INVENTORY = """
site: {name: Command test}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
gateways: [{id: floor, type: rtu_over_tcp, host: 127.0.0.1, port: PORT, timeout: 0.3}]
devices:
  - {id: r1-relay, model: generic-relay, gateway: floor, unit: 11, building: B}
  - {id: r2-relay, model: generic-relay, gateway: floor, unit: 12, building: B}
"""


async def run_until(dispatcher: ModbusCommandDispatcher, done, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    deadline = asyncio.get_running_loop().time() + seconds
    while not await done():
        assert asyncio.get_running_loop().time() < deadline, "not done in time"
        await asyncio.sleep(0.05)
    stop.set()
    await task


async def test_commands_are_confirmed_by_read_back_or_fail_after_their_attempts(
    database: Database, demo_inventory: Inventory, tmp_path: Path
) -> None:
    relays = [SimulatedModbusDevice(unit, demo_inventory.models["generic-relay"]) for unit in (11, 12)]
    relays[0].values["relay_closed"] = True
    sim = SimulatedGateway(relays, rtu=True)
    await sim.start()
    (tmp_path / "devices.yaml").write_text(INVENTORY.replace("PORT", str(sim.port)), encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    link = ModbusLink(inventory.gateways["floor"])
    queue = CommandQueue(database, inventory, max_attempts=3, backoff=0.05)
    dispatcher = ModbusCommandDispatcher(queue, {"floor": link}, inventory, every=0.05)
    now = datetime.now(UTC)
    try:
        cut_off = CommandRequest("r1-relay", "relay", "off", CommandSource.RULE, key="fault:7:relay:off")
        cut = await queue.enqueue(cut_off, now)
        twice = await queue.enqueue(cut_off, now)
        assert twice.id == cut.id  # the same request, asked again, is one command
        relays[1].offline = True  # r2 does not answer: its command is retried, then fails
        lost = await queue.enqueue(
            CommandRequest("r2-relay", "relay", "off", CommandSource.USER, requested_by="li"), now
        )

        async def finished() -> bool:
            return all(c.state in {"confirmed", "failed"} for c in await queue.recent())

        await run_until(dispatcher, finished)
        states = {c.id: (c.state, c.attempts) for c in await queue.recent()}
        assert states[cut.id] == ("confirmed", 1) and relays[0].values["relay_closed"] is False
        assert states[lost.id] == ("failed", 3)
        assert "no answer" in (await queue.recent("r2-relay"))[0].last_error

        # A command left "sent" by a process that stopped mid-way is sent again at the next start.
        restore = await queue.enqueue(CommandRequest("r1-relay", "relay", "on", CommandSource.USER), datetime.now(UTC))
        [claimed] = await queue.claim({"r1-relay"}, datetime.now(UTC))
        assert claimed.id == restore.id and relays[0].values["relay_closed"] is False

        async def restored() -> bool:
            return (await queue.recent("r1-relay"))[0].state == "confirmed"

        await run_until(dispatcher, restored)
        assert relays[0].values["relay_closed"] is True
    finally:
        await link.close()
        await sim.stop()


async def test_a_claim_hands_out_each_due_command_once_in_order_and_fails_the_late_ones(
    database: Database, demo_inventory: Inventory
) -> None:
    """Four dispatchers claiming side by side (on PostgreSQL each skips the rows another holds) get every
    due relay command exactly once, each batch in queue order; one past its deadline is failed, not sent;
    one waiting for its retry is left alone."""
    failed: list[DeviceCommand] = []

    async def on_failed(row: DeviceCommand) -> None:
        failed.append(row)

    queue = CommandQueue(database, demo_inventory, on_failed=on_failed)
    relays = sorted(device for device in demo_inventory.devices if device.endswith("-relay"))[:40]
    now = datetime.now(UTC)
    earlier = now - timedelta(seconds=1)
    queued = [
        await queue.enqueue(CommandRequest(relay, "relay", "off", CommandSource.USER), earlier) for relay in relays
    ]
    late_on = CommandRequest(relays[0], "relay", "on", CommandSource.SCHEDULE, deadline=now - timedelta(milliseconds=1))
    late = await queue.enqueue(late_on, earlier)
    async with database.session() as session:  # the first relay's "off" was superseded by the late "on"
        await session.execute(update(DeviceCommand).where(DeviceCommand.id == queued[1].id)
                              .values(next_attempt_at=now + timedelta(seconds=30)))  # fmt: skip
        await session.commit()

    async def dispatcher() -> list[list[DeviceCommand]]:
        batches = []
        while batch := await queue.claim(set(relays), now, limit=7):
            batches.append(batch)
        return batches

    batches = [batch for batches in await asyncio.gather(*(dispatcher() for _ in range(4))) for batch in batches]
    claimed = [row.id for batch in batches for row in batch]
    assert sorted(claimed) == [row.id for row in queued[2:]]  # each once; not the waiting one, not the late one
    assert all([row.id for row in batch] == sorted(row.id for row in batch) for batch in batches)
    assert all(row.state == "sent" and row.attempts == 1 and row.sent_at is not None for b in batches for row in b)
    assert [row.id for row in failed] == [late.id] and failed[0].last_error == "not sent by its deadline"
    states = {row.id: (row.state, row.attempts) for row in await queue.recent(limit=100)}
    assert states[late.id] == ("failed", 0) and states[queued[0].id][0] == "superseded"
    assert states[queued[1].id] == ("queued", 0)


async def test_firings_are_recorded_once_in_batches_even_by_two_writers_at_once(
    database: Database, demo_inventory: Inventory
) -> None:
    """More firings than one batch holds, recorded by two writers side by side (a restart replaying its
    last second while the old process still runs): every firing is written once by one of them, and each
    output is left with one command waiting, however many batches and writers saw it."""
    queue = CommandQueue(database, demo_inventory)
    commander = ZoneCommander(database, demo_inventory, queue)
    now = datetime.now(UTC).replace(microsecond=0)
    lighting = [zone.id for zone in demo_inventory.zones.values() if zone.kind == "lighting"]
    firings = [Firing(zone, "schedule:1#1", "on", now - timedelta(seconds=second))
               for second in range(60) for zone in lighting]  # fmt: skip
    assert len(firings) > 2 * 100
    first, second = await asyncio.gather(commander.record(firings, now), commander.record(firings, now))
    assert sorted(f.key for f in first + second) == sorted(f.key for f in firings)
    assert await commander.record(firings, now) == []  # asked again: nothing
    commands = await queue.recent(limit=1000)
    outputs = [(row.device, row.command) for row in commands if row.state == "queued"]
    expected = {(output.device, output.command) for zone in lighting for output in commander.outputs[zone]}
    assert sorted(outputs) == sorted(expected)  # one each: a twin from the other writer superseded
    async with database.session() as session:
        written = (await session.execute(select(func.count()).select_from(ScheduleFiring))).scalar_one()
    assert written == len(firings)


async def test_a_start_sends_again_only_what_no_live_process_waits_on(database: Database, tmp_path: Path) -> None:
    """Left ``sent`` at a stop: alone on the database (SQLite; PostgreSQL with no live peer: the test before)
    all of it is sent again at the start; with a live peer on PostgreSQL only what was sent longer ago than
    anyone waits — a newer one may be the peer's — and the rest once it is that old."""
    (tmp_path / "devices.yaml").write_text(INVENTORY.replace("PORT", "1"), encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    queue = CommandQueue(database, inventory)
    now = datetime.now(UTC)
    ids = []
    for device, sent_ago in (("r1-relay", timedelta(seconds=5)), ("r2-relay", timedelta(minutes=5))):
        row = await queue.enqueue(CommandRequest(device, "relay", "on", CommandSource.USER), now)
        async with database.session() as session:
            await session.execute(update(DeviceCommand).where(DeviceCommand.id == row.id)
                                  .values(state="sent", sent_at=now - sent_ago, attempts=1))  # fmt: skip
            await session.commit()
        ids.append(row.id)
    link = ModbusLink(inventory.gateways["floor"])  # never connected: only its start is run
    dispatcher = ModbusCommandDispatcher(queue, {"floor": link}, inventory, every=0.05)
    if not database.is_sqlite:  # this process and a live peer
        for n in range(2):
            session_rows = HouqinProcess(id=f"p{n}", host="h", pid=n, roles="collect", files="{}", started_at=now,
                                         seen_at=now)  # fmt: skip
            async with database.session() as session:
                session.add(session_rows)
                await session.commit()
    await dispatcher.resume()  # what its start does

    async def states() -> list[str]:
        async with database.session() as session:
            rows = (await session.execute(select(DeviceCommand).order_by(DeviceCommand.id))).scalars().all()
        return [row.state for row in rows if row.id in ids]

    if database.is_sqlite:
        assert await states() == ["queued", "queued"]
    else:
        assert await states() == ["sent", "queued"]  # the fresh one may be a live peer's
        await queue.requeue_unfinished(inventory.devices.keys(), now, sent_before=now + STALE - timedelta(seconds=4))
        assert await states() == ["queued", "queued"]  # a minute on, the sweep's turn: nobody waits that long


class _Ownership:
    """Stands in for ``GatewayOwnership``'s notices, so the test decides when a gateway changes hands."""

    def __init__(self) -> None:
        self.watchers: list[Callable[[str, bool, bool], None]] = []

    def watch(self, callback: Callable[[str, bool, bool], None]) -> None:
        self.watchers.append(callback)

    def change(self, gateway: str, owned: bool) -> None:
        for watcher in self.watchers:
            watcher(gateway, owned, False)


class _HeldDispatcher(CommandDispatcher):
    """Sends nothing until ``wire`` opens; records what it sent."""

    def __init__(self, queue: CommandQueue, inventory: Inventory) -> None:
        super().__init__(queue, inventory, set(), every=60)
        self.wire = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, command: Sendable) -> None:
        await self.wire.wait()
        self.sent.append(command.device)


async def test_a_gateway_handed_to_another_process_leaves_its_lined_up_commands_to_the_new_owner(
    database: Database, demo_inventory: Inventory
) -> None:
    queue = CommandQueue(database, demo_inventory)
    dispatcher = _HeldDispatcher(queue, demo_inventory)
    ownership = _Ownership()
    dispatcher.follow(cast(GatewayOwnership, ownership), ["dorm1-f1"])
    ownership.change("dorm1-f1", owned=True)
    await asyncio.gather(*dispatcher._recording)
    relays = ["d1-101-relay", "d1-102-relay", "d1-103-relay"]
    now = datetime.now(UTC)
    for relay in relays:
        await queue.enqueue(CommandRequest(relay, "relay", "off", CommandSource.USER, reason="test"), now)
    await dispatcher.dispatch_once()  # the first is on the wire (held there), two wait in line
    await asyncio.sleep(0.05)
    ownership.change("dorm1-f1", owned=False)  # a rebalance gives the gateway to a newcomer
    dispatcher.wire.set()
    await asyncio.sleep(0.05)
    await asyncio.gather(*dispatcher._recording)
    assert dispatcher.sent == ["d1-101-relay"]  # the one on the wire finished; the line was not sent here
    async with database.session() as session:
        rows = (await session.execute(select(DeviceCommand).order_by(DeviceCommand.id))).scalars().all()
    assert [(row.device, row.state, row.attempts) for row in rows] == [
        ("d1-101-relay", "sent", 1), ("d1-102-relay", "queued", 0), ("d1-103-relay", "queued", 0)
    ]  # fmt: skip
    # The new owner claims them as any queued command.
    assert [row.device for row in await queue.claim(set(relays), datetime.now(UTC))] == relays[1:]
