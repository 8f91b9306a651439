"""Dorm power at scale: 1,000 rooms (an SDM120 meter and a relay module each) on 9,600-baud RS-485 buses
of 25 rooms, simulated in their own process with the wire time of every frame; houqin runs its collect
and billing roles on the embedded SQLite, as the demo does.

Measured now: ``trip_p99_s`` — 200 rooms switch a 1.8 kW kettle on within one minute; for each, the time
from the reading that completes the appliance's signature (its hold time over) to the relay module's
off confirmed by its read-back (goal ≤ 2 s, p99 over the 200 rooms), and ``poll_ratio`` — polls done
during the burst ÷ polls due (goal ≥ 0.9). Before that, the curfew, fired by the scheduler from a schedule
as a site writes it: ``curfew_s`` — from the entry's due second to the last of the 1,000 relay modules'
off confirmed; ``curfew_ratio`` — that time ÷ the buses' wire-time floor for those commands (each a coil
write and its read-back, at the simulator's own frame timing; buses work side by side, so the floor is
the busiest bus's; goal ≤ 1.5); ``curfew_poll_ratio`` — polls done from the due second until the last
confirmation ÷ polls due; ``curfew_busy_ratio`` — ``curfew_s`` ÷ the busiest bus's wire time for the commands
*and the polls it did meanwhile* (the polls are a quarter of each bus here, and must go on: with them the
command-only floor cannot be reached, whatever the software); and ``restore_s`` for the morning's restore of
every room.

    .venv/bin/python bench/dorm_power.py [--rooms 1000] [--per-bus 25] [--trips 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from assembly import ProcessRole, assemble  # noqa: E402
from assembly.graph import Tuning  # noqa: E402
from collectors.modbus_poller import ModbusBusPoller  # noqa: E402
from collectors.simulators.campus import SimulatedCampus  # noqa: E402
from collectors.simulators.rs485 import Rs485Bus, blocks_of  # noqa: E402
from houqin.billing.ledger import ensure_wallets, post  # noqa: E402
from houqin.inventory import Inventory, load_inventory  # noqa: E402
from houqin.schedules.model import ScheduleIn  # noqa: E402
from houqin.settings import Settings  # noqa: E402
from houqin.store import Database, upgrade_database  # noqa: E402
from houqin.store.tables import DeviceCommand, EntryKind, PowerEventKind, RoomPowerEvent  # noqa: E402

POLL_S = 15.0
HOLD_S = 10.0


def inventory_text(rooms: int, per_bus: int) -> str:
    buses = (rooms + per_bus - 1) // per_bus
    lines = ["site: {name: Dorm power bench, timezone: Asia/Shanghai}",
             "tariffs: [{id: flat, price_fen_per_kwh: 56}]",
             f"appliance_policies: [{{id: dorms, hold_s: {HOLD_S:g}, restore_min: 30}}]", "gateways:"]  # fmt: skip
    lines += [
        f"  - {{id: bus{b}, type: rtu_over_tcp, host: 127.0.0.1, port: {b + 1}, timeout: 1.0}}" for b in range(buses)
    ]
    devices, rooms_out = ["devices:"], ["rooms:"]
    for n in range(rooms):
        bus, slot = divmod(n, per_bus)
        room = f"R{n:04d}"
        devices.append(f"  - {{id: {room}-m, model: eastron-sdm120, gateway: bus{bus}, unit: {slot + 1}, "
                       f"building: b{bus}, room: {room}, poll_interval: {POLL_S:g}}}")  # fmt: skip
        devices.append(f"  - {{id: {room}-r, model: generic-relay, gateway: bus{bus}, unit: {slot + 101}, building: "
                       f"b{bus}, room: {room}, poll_interval: {POLL_S * 4:g}}}")  # fmt: skip
        rooms_out.append(f"  - {{id: {room}, building: b{bus}, floor: 1, meter: {room}-m, relay: {room}-r, "
                         "tariff: flat}")  # fmt: skip
    zones = ["zones:", f"  - {{id: dorms, kind: dorm_power, buildings: [{', '.join(f'b{b}' for b in range(buses))}]}}"]
    return "\n".join(lines + devices + rooms_out + zones) + "\n"


def serve(path: str, ports: Any, kettles: Any, stop: Any) -> None:
    """In its own process: the campus's buses with the wire time of 9,600 baud, and the kettles."""

    async def main() -> None:
        inventory = load_inventory(Path(path))
        campus = SimulatedCampus(inventory, Settings().tz)
        for gateway in campus.gateways.values():
            bus = Rs485Bus(baudrate=9600)
            for device in gateway.devices.values():
                device.bus = bus
        await campus.start()
        ports.put({gateway_id: gateway.port for gateway_id, gateway in campus.gateways.items()})
        while not await asyncio.to_thread(stop.wait, 0.02):
            while not kettles.empty():
                campus.inject(kettles.get(), "illegal_appliance")
        await campus.stop()

    asyncio.run(main())


@dataclass
class Figures:
    trip_delays: list[float] = field(default_factory=list)
    poll_ratio: float = float("nan")
    curfew_s: float = float("nan")
    curfew_floor_s: float = float("nan")
    curfew_busy_floor_s: float = float("nan")
    curfew_poll_ratio: float = float("nan")
    restore_s: float = float("nan")


def polls_of(pollers: list[ModbusBusPoller]) -> int:
    return sum(p.polls + p.failed_polls for p in pollers)


def polls_by_device(pollers: list[ModbusBusPoller]) -> dict[str, int]:
    return {device: health.polls for p in pollers for device, health in p.health.items()}


def poll_wire(inventory: Inventory, device: str) -> float:
    """One poll's wire time for ``device``, timed as the simulator times it (bits handed over as words)."""
    bus, model = Rs485Bus(baudrate=9600), inventory.model_of(inventory.devices[device])
    blocks = blocks_of(list(model.registers), model.max_read_gap)
    return sum(bus.read_time(table, count * 16 if table in {"coil", "discrete"} else count) for table, count in blocks)


def busy_floor(inventory: Inventory, before: dict[str, int], after: dict[str, int]) -> float:
    """The busiest bus's wire time for its relay commands and the polls it did between two snapshots."""
    per_bus: dict[str, float] = {}
    exchange = 2 * Rs485Bus(baudrate=9600).read_time("coil", 16)
    for room in inventory.rooms.values():
        relay = inventory.relay_of(room)
        if relay is not None and relay.gateway is not None:
            per_bus[relay.gateway] = per_bus.get(relay.gateway, 0.0) + exchange
    for device, polls in after.items():
        gateway = inventory.devices[device].gateway
        if gateway is not None:
            per_bus[gateway] = per_bus.get(gateway, 0.0) + (polls - before.get(device, 0)) * poll_wire(
                inventory, device
            )
    return max(per_bus.values())


def polls_due(pollers: list[ModbusBusPoller], seconds: float) -> float:
    return sum(seconds / d.poll_interval for p in pollers for d in p.devices)


async def confirmed_relays(database: Database, action: str, since: datetime) -> dict[str, DeviceCommand]:
    async with database.session() as session:
        query = select(DeviceCommand).where(DeviceCommand.state == "confirmed", DeviceCommand.action == action,
                                            DeviceCommand.created_at >= since)  # fmt: skip
        return {c.device: c for c in (await session.execute(query)).scalars()}


async def switch_all(database: Database, action: str, due: datetime, rooms: int) -> float:
    """Seconds from ``due`` to the last of ``rooms`` relays confirmed ``action``."""
    deadline = time.monotonic() + 120 + (due - datetime.now(UTC)).total_seconds()
    while time.monotonic() < deadline:
        confirmed = await confirmed_relays(database, action, due - timedelta(seconds=1))
        if len(confirmed) >= rooms:
            last = max(c.finished_at for c in confirmed.values() if c.finished_at is not None)
            written = min(c.created_at for c in confirmed.values())
            sent = [c.sent_at for c in confirmed.values() if c.sent_at is not None]
            print(f"{action}: written {(written - due).total_seconds():.2f} s after the due second, first sent "
                  f"{(min(sent) - due).total_seconds():.2f} s, last sent {(max(sent) - due).total_seconds():.2f} s, "
                  f"last confirmed {(last - due).total_seconds():.2f} s")  # fmt: skip
            return (last - due).total_seconds()
        await asyncio.sleep(0.25)
    print(f"only {len(confirmed)} of {rooms} relays confirmed {action}")
    return float("nan")


def wire_floor(inventory: Inventory) -> float:
    """The busiest bus's wire time for one relay command per room: a coil write and its read-back, timed
    as the simulator times them (``Rs485Bus``: pymodbus hands a coil over as a 16-bit word)."""
    per_bus: dict[str, int] = {}
    for room in inventory.rooms.values():
        relay = inventory.relay_of(room)
        if relay is not None and relay.gateway is not None:
            per_bus[relay.gateway] = per_bus.get(relay.gateway, 0) + 1
    return max(per_bus.values()) * 2 * Rs485Bus(baudrate=9600).read_time("coil", 16)


async def curfew(houqin: Any, inventory: Inventory, pollers: list[ModbusBusPoller], figures: Figures) -> None:
    """The curfew at a second 15 s ahead, and its end 40 s later, as a dated schedule the scheduler fires."""
    tz = Settings().tz
    cut = (datetime.now(UTC) + timedelta(seconds=15)).replace(microsecond=0)
    back = cut + timedelta(seconds=40)
    entries = [
        {
            "at": moment.astimezone(tz).strftime("%H:%M:%S"),
            "action": action,
            "dates": [moment.astimezone(tz).date().isoformat()],
        }
        for moment, action in ((cut, "off"), (back, "on"))
    ]
    spec = ScheduleIn.model_validate({"name": "bench curfew", "zone": "dorms", "entries": entries})  # fmt: skip
    await houqin.schedule_book.save(spec, "bench", datetime.now(UTC))
    await asyncio.sleep(max(0.0, (cut - datetime.now(UTC)).total_seconds()))
    polls_before, started, by_device = polls_of(pollers), time.monotonic(), polls_by_device(pollers)
    figures.curfew_s = await switch_all(houqin.database, "off", cut, len(inventory.rooms))
    figures.curfew_busy_floor_s = busy_floor(inventory, by_device, polls_by_device(pollers))
    seconds = max(figures.curfew_s, time.monotonic() - started) if figures.curfew_s == figures.curfew_s else 1.0
    figures.curfew_poll_ratio = (polls_of(pollers) - polls_before) / polls_due(pollers, seconds)
    figures.curfew_floor_s = wire_floor(inventory)
    figures.restore_s = await switch_all(houqin.database, "on", back, len(inventory.rooms))


async def trips(
    database: Database, inventory: Inventory, pollers: list[ModbusBusPoller], count: int, kettles: Any,
    figures: Figures,
) -> None:  # fmt: skip
    since = datetime.now(UTC)
    chosen = sorted(inventory.rooms)[:: max(1, len(inventory.rooms) // count)][:count]
    polls_before, started = polls_of(pollers), time.monotonic()
    for index, room in enumerate(chosen):  # 200 kettles within one minute
        kettles.put(inventory.rooms[room].meter)
        await asyncio.sleep(max(0.0, started + 60.0 * (index + 1) / len(chosen) - time.monotonic()))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        confirmed = await confirmed_relays(database, "off", since)
        if len(confirmed) >= len(chosen):
            break
        await asyncio.sleep(1)
    figures.poll_ratio = (polls_of(pollers) - polls_before) / polls_due(pollers, time.monotonic() - started)
    async with database.session() as session:
        events = {e.room: e for e in (await session.execute(select(RoomPowerEvent).where(
            RoomPowerEvent.kind == PowerEventKind.APPLIANCE_TRIP))).scalars()}  # fmt: skip
    for room, event in events.items():
        command = confirmed.get(inventory.rooms[room].relay or "")
        if command is not None and command.finished_at is not None:
            figures.trip_delays.append((command.finished_at - event.at).total_seconds())
    print(f"{len(events)} rooms tripped, {len(figures.trip_delays)} relay offs confirmed of {len(chosen)} kettles")


async def run(path: Path, ports: dict[str, int], count: int, kettles: Any) -> Figures:
    inventory = load_inventory(path)
    gateways = {gid: gw.model_copy(update={"port": ports[gid]}) for gid, gw in inventory.gateways.items()}
    inventory = Inventory(**{**inventory.__dict__, "gateways": gateways})
    data = Path(tempfile.mkdtemp(prefix="houqin-bench-"))
    database = Database(f"sqlite+aiosqlite:///{data / 'houqin.sqlite3'}")
    await upgrade_database(database)
    await ensure_wallets(database, list(inventory.rooms))
    async with database.session() as session:
        for room in inventory.rooms:
            await post(
                session, room, EntryKind.ADJUSTMENT, 100_000, datetime.now(UTC), key=f"open:{room}", cause="bench"
            )
        await session.commit()
    settings = Settings(data_dir=data, timezone="Asia/Shanghai")
    figures = Figures()
    roles = {ProcessRole.COLLECT, ProcessRole.BILLING, ProcessRole.SCHEDULER}
    async with assemble(settings, inventory, roles=roles, database=database,
                        tuning=Tuning(command_backoff_s=0.5)) as houqin:  # fmt: skip
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        pollers = [c for c in houqin.components if isinstance(c, ModbusBusPoller)]
        await asyncio.sleep(POLL_S * 1.5)  # every meter read twice: baselines exist
        await curfew(houqin, inventory, pollers, figures)
        await asyncio.sleep(POLL_S * 2)  # power back in every room, and read again: the baselines are new
        await trips(database, inventory, pollers, count, kettles, figures)
        stop.set()
        await running
    await database.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--per-bus", type=int, default=25)
    parser.add_argument("--trips", type=int, default=200)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="houqin-bench-")) / "devices.yaml"
    path.write_text(inventory_text(args.rooms, args.per_bus), encoding="utf-8")
    context = multiprocessing.get_context("spawn")
    ports, kettles, stop = context.Queue(), context.Queue(), context.Event()
    server = context.Process(target=serve, args=(str(path), ports, kettles, stop), daemon=True)
    server.start()
    try:
        figures = asyncio.run(run(path, ports.get(timeout=300), args.trips, kettles))
    finally:
        stop.set()
        server.join(30)
    delays = sorted(figures.trip_delays)
    p99 = delays[min(len(delays) - 1, int(0.99 * len(delays)))] if delays else float("nan")
    median = statistics.median(delays) if delays else float("nan")
    buses = (args.rooms + args.per_bus - 1) // args.per_bus
    print(f"rooms={args.rooms} buses={buses} trips={args.trips} signature-to-confirmed-off: median={median:.2f} s "
          f"p99={p99:.2f} s max={max(delays, default=0):.2f} s")  # fmt: skip
    ratio = figures.curfew_s / figures.curfew_floor_s
    busy = figures.curfew_s / figures.curfew_busy_floor_s
    print(f"curfew: {args.rooms} relays off in {figures.curfew_s:.2f} s (wire floor {figures.curfew_floor_s:.2f} s, "
          f"with the polls done meanwhile {figures.curfew_busy_floor_s:.2f} s), "
          f"restored in {figures.restore_s:.2f} s")  # fmt: skip
    print(f"rooms={args.rooms} trips={len(delays)} trip_p99_s={p99:.2f} poll_ratio={figures.poll_ratio:.3f} "
          f"curfew_s={figures.curfew_s:.2f} curfew_ratio={ratio:.2f} curfew_busy_ratio={busy:.2f} "
          f"curfew_poll_ratio={figures.curfew_poll_ratio:.3f} restore_s={figures.restore_s:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
