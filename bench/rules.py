"""The rules engine over 10,000 devices with the shipped rule set, on the embedded SQLite store.

1. Throughput: every device's reading, normal values (no faults), handed to the engine in pipeline-sized
   batches as fast as it takes them: readings/s.
2. Latency to a repair order: readings flow through the pipeline at a steady campus rate while, now and
   then, a meter reports the reading that completes a low-voltage fault's duration (its first low reading
   came 61 s earlier by the reading's timestamps). Measured from the moment that reading is handed to the
   pipeline to the moment its repair order is committed: p50 and p99.

    .venv/bin/python bench/rules.py [--devices 10000] [--faults 200] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.pipeline import Pipeline  # noqa: E402
from houqin.accounts import NewAccount, add_account  # noqa: E402
from houqin.inventory import Inventory, load_inventory  # noqa: E402
from houqin.readings import Reading  # noqa: E402
from houqin.repairs.faults import FaultBook, OrderChange  # noqa: E402
from houqin.repairs.orders import RepairDesk  # noqa: E402
from houqin.settings import RepairSettings  # noqa: E402
from houqin.store import Database, upgrade_database  # noqa: E402
from houqin.store.tables import Role  # noqa: E402
from rules.engine import RulesEngine  # noqa: E402
from rules.loader import DEFAULT_RULES, load_rules  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")


def campus(path: Path, devices: int) -> Inventory:
    """Room meters (80 %), lighting controllers (10 %) on Modbus, water meters (10 %) on MQTT."""
    meters, lights = devices * 8 // 10, devices // 10
    water = devices - meters - lights
    lines = ["site: {name: Bench campus, timezone: Asia/Shanghai}", "tariffs: [{id: flat, price_fen_per_kwh: 56}]",
             "teams:", "  - {id: electrical, name: E, categories: [electrical, meter, lighting]}",
             "  - {id: plumbing, name: P, categories: [plumbing, water_meter]}", "gateways:"]  # fmt: skip
    buses = (meters + lights) // 50 + 1
    lines += [f"  - {{id: bus{b}, type: rtu_over_tcp, host: 10.0.{b // 250}.{b % 250 + 1}, port: 502}}"
              for b in range(buses)]  # fmt: skip
    lines.append("devices:")
    for n in range(meters + lights):
        model = "eastron-sdm120" if n < meters else "modbus-lighting-4ch"
        lines.append(f"  - {{id: dev{n}, model: {model}, gateway: bus{n // 50}, unit: {n % 50 + 1}, "
                     f"building: b{n // 500}, floor: {n // 50 % 10 + 1}, room: R{n}}}")  # fmt: skip
    for n in range(water):
        lines.append(f"  - {{id: water{n}, model: mqtt-water-meter, topic: campus/w/{n}, building: b{n // 50}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_inventory(path)


def normal(inventory: Inventory, ts: datetime, skip: frozenset[str] = frozenset()) -> list[Reading]:
    """One reading of every device (but ``skip``), values that move a little from one time to the next."""
    readings = []
    wobble = (ts.timestamp() // 10) % 7 * 0.1
    for device in inventory.devices.values():
        if device.id in skip:
            continue
        tags = inventory.device_tags(device)
        if device.model == "eastron-sdm120":
            fields = {"voltage": 229.0 + wobble, "current": 1.2, "power": 280.0, "energy": 512.0,
                      "apparent_power": 290.0, "reactive_power": 20.0, "power_factor": 0.97}  # fmt: skip
        elif device.model == "modbus-lighting-4ch":
            fields = {f"circuit{c}_on": True for c in range(1, 5)} | {f"circuit{c}_current": 1.1 for c in range(1, 5)}
        else:
            fields = {"flow": 0.1, "total": 31.5}
        readings.append(Reading(device.id, ts, fields, tags))
    return readings


async def setup(workdir: Path, devices: int) -> tuple[Inventory, Database, RulesEngine, list[float]]:
    inventory = campus(workdir / "devices.yaml", devices)
    database = Database(f"sqlite+aiosqlite:///{workdir / 'houqin.sqlite3'}")
    await upgrade_database(database)
    async with database.session() as session:
        for n in range(20):
            team = "electrical" if n < 15 else "plumbing"
            await add_account(session, NewAccount(f"worker{n}", Role.WORKER, "bench-password", team=team), inventory)
        await session.commit()
    committed: list[float] = []

    async def on_order(change: OrderChange) -> None:
        committed.append(time.perf_counter())

    desk = RepairDesk(inventory, RepairSettings(), TZ)
    engine = RulesEngine(load_rules([DEFAULT_RULES], inventory), inventory, FaultBook(database, desk),
                         RepairSettings(), TZ, on_order_change=on_order)  # fmt: skip
    return inventory, database, engine, committed


async def throughput(inventory: Inventory, engine: RulesEngine, rounds: int) -> float:
    start = datetime.now(UTC)
    batches = [normal(inventory, start + timedelta(seconds=10 * r)) for r in range(rounds)]
    began = time.perf_counter()
    for readings in batches:
        for offset in range(0, len(readings), 1000):
            await engine.consume(readings[offset : offset + 1000])
    return sum(map(len, batches)) / (time.perf_counter() - began)


async def latency(inventory: Inventory, engine: RulesEngine, committed: list[float], faults: int,
                  rate: float) -> list[float]:  # fmt: skip
    pipeline = Pipeline()
    pipeline.add_sink(engine)
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    base = datetime.now(UTC) + timedelta(hours=1)
    meters = [d for d in inventory.devices.values() if d.model == "eastron-sdm120"][:faults]
    # The first low reading of every faulty meter: each fault is pending, waiting for its 60 s.
    for device in meters:
        await pipeline.publish(Reading(device.id, base, {"voltage": 180.0}, inventory.device_tags(device)))
    stream = normal(inventory, base + timedelta(seconds=30), frozenset(device.id for device in meters))
    every = max(1, len(stream) // faults)
    handed: list[float] = []
    committed.clear()
    began = time.perf_counter()
    for n, reading in enumerate(stream):
        if n % every == 0 and len(handed) < len(meters):
            device = meters[len(handed)]
            completing = Reading(device.id, base + timedelta(seconds=61), {"voltage": 180.0},
                                 inventory.device_tags(device))  # fmt: skip
            handed.append(time.perf_counter())
            await pipeline.publish(completing)
        await pipeline.publish(reading)
        pause = began + (n + 1) / rate - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
    deadline = time.perf_counter() + 60
    while len(committed) < len(handed) and time.perf_counter() < deadline:  # noqa: ASYNC110 - polling a figure
        await asyncio.sleep(0.01)
    stop.set()
    await running
    # Orders commit in the order their readings were handed (one lane, one engine).
    return [(done - start) * 1000 for start, done in zip(handed, committed, strict=False)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--rate", type=float, default=2000.0, help="readings/s of the steady stream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="houqin-bench-") as workdir:
        inventory, database, engine, committed = await setup(Path(workdir), args.devices)
        await engine.restore()
        print(f"{len(engine.rules)} rules, {args.devices} devices, {engine.watches} watches")
        per_second = await throughput(inventory, engine, rounds=3)
        print(f"throughput: {per_second:,.0f} readings/s through the engine (no faults)")
        latencies = await latency(inventory, engine, committed, args.faults, args.rate)
        await database.close()
    p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)
    print(f"repair orders: {len(latencies)} of {args.faults} committed; from the completing reading to the "
          f"committed order p50={p50:.1f} ms p99={p99:.1f} ms (stream {args.rate:,.0f} readings/s)")  # fmt: skip
    print(f"readings_per_s={per_second:.0f} order_p50_ms={p50:.1f} order_p99_ms={p99:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
