"""Writing readings into a real influxd: houqin's InfluxDB store against a bare line-protocol POST loop,
and the replay rate of a spool of a million points.

The bare loop formats the same readings with one f-string per point and POSTs them in batches of the same
size, one request at a time, to ``/write``: the least a writer can do. houqin's store is fed the way the
pipeline feeds it (a thousand readings per call) and timed until InfluxDB has taken every point. The
spool is filled while no InfluxDB is configured to answer, then a store is started against influxd and
timed until the spool is empty (its replay pace set out of the way). Every count is checked in InfluxDB.

    .venv/bin/python bench/influx_write.py [--points 300000] [--spool-points 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from houqin.readings import Reading  # noqa: E402
from houqin.settings import InfluxSettings, TelemetrySettings  # noqa: E402
from houqin.telemetry.influx_store import InfluxStore  # noqa: E402
from houqin.telemetry.line_protocol import encode_readings, timestamp_ns  # noqa: E402
from houqin.telemetry.spool import Spool  # noqa: E402
from tests.servers import Influxd, influxd_server  # noqa: E402

BATCH = 5000
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def campus_readings(count: int, shift: int = 0) -> list[Reading]:
    """Room meter readings: 1,000 meters, six fields each, tags as the inventory gives them."""
    readings = []
    for n in range(count):
        meter = n % 1000
        tags = {"kind": "electricity", "device": f"d{meter // 300 + 1}-{meter:03d}-meter", "model": "eastron-sdm120",
                "building": f"dorm-{meter // 300 + 1}", "floor": str(meter // 30 % 10 + 1), "room": f"R{meter:03d}",
                "gateway": f"gw{meter // 30}"}  # fmt: skip
        fields = {"voltage": 220.0 + n % 20, "current": 1.5 + n % 7, "power": 330.0 + n % 50,
                  "energy": 1000.0 + n / 1000, "power_factor": 0.95, "frequency": 50.0}  # fmt: skip
        readings.append(Reading(tags["device"], T0 + timedelta(milliseconds=n + shift), fields, tags))
    return readings


def bare_line(reading: Reading) -> str:
    tags = ",".join(f"{key}={value}" for key, value in sorted(reading.tags.items()))
    fields = ",".join(f"{key}={value!r}" for key, value in reading.fields.items())
    return f"electricity,{tags} {fields} {timestamp_ns(reading.ts)}"


def count_points(influxd: Influxd, database: str) -> int:
    series = influxd.query(database, "SELECT count(voltage) FROM electricity")
    return int(series[0]["values"][0][1]) if series else 0


async def bare_loop(influxd: Influxd, readings: list[Reading]) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        await client.post(f"{influxd.url}/query", data={"q": "CREATE DATABASE bare"})
        started = time.perf_counter()
        for start in range(0, len(readings), BATCH):
            body = "\n".join(bare_line(reading) for reading in readings[start : start + BATCH]).encode()
            response = await client.post(f"{influxd.url}/write", params={"db": "bare"}, content=body)
            response.raise_for_status()
        return time.perf_counter() - started


async def through_the_store(influxd: Influxd, readings: list[Reading], spool_dir: Path) -> float:
    telemetry = TelemetrySettings(batch_points=BATCH, flush_seconds=1.0)
    store = InfluxStore(InfluxSettings(url=influxd.url, api="v1", database="store"), telemetry,
                        Spool(spool_dir, telemetry.spool_max_bytes))  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(store.run(stop))
    await asyncio.sleep(0.5)  # the database is created
    started = time.perf_counter()
    for start in range(0, len(readings), 1000):
        await store.consume(readings[start : start + 1000])
    stop.set()  # flushes the last partial batch
    await task
    elapsed = time.perf_counter() - started
    assert len(store.spool) == 0, "the store spooled during the benchmark"
    return elapsed


async def replay(influxd: Influxd, points: int, spool_dir: Path) -> float:
    spool = Spool(spool_dir, 4 << 30)
    for start in range(0, points, BATCH):
        lines = encode_readings(campus_readings(min(BATCH, points - start), shift=start))
        spool.append(("\n".join(lines) + "\n").encode(), len(lines))
    telemetry = TelemetrySettings(batch_points=BATCH, replay_points_per_second=100_000_000)
    store = InfluxStore(InfluxSettings(url=influxd.url, api="v1", database="replay"), telemetry, spool)
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(store.run(stop))
    while len(spool):  # noqa: ASYNC110 - polling the figure being measured
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--spool-points", type=int, default=1_000_000)
    args = parser.parse_args()
    readings = campus_readings(args.points)
    with influxd_server() as influxd, tempfile.TemporaryDirectory(prefix="houqin-bench-") as workdir:
        bare_seconds = asyncio.run(bare_loop(influxd, readings))
        store_seconds = asyncio.run(through_the_store(influxd, readings, Path(workdir) / "spool"))
        replay_seconds = asyncio.run(replay(influxd, args.spool_points, Path(workdir) / "replay"))
        lost = (args.points - count_points(influxd, "store")) + (args.spool_points - count_points(influxd, "replay"))
        bare_lost = args.points - count_points(influxd, "bare")
    bare_pps, store_pps = args.points / bare_seconds, args.points / store_seconds
    replay_pps = args.spool_points / replay_seconds
    print(f"bare line-protocol POST loop: {bare_pps:,.0f} points/s ({bare_lost} missing)")
    print(f"houqin InfluxDB store:        {store_pps:,.0f} points/s")
    print(f"spool replay:                 {replay_pps:,.0f} points/s ({args.spool_points:,} points)")
    print(f"write_ratio={store_pps / bare_pps:.3f} spool_replay_pps={replay_pps:.0f} lost={lost}")


if __name__ == "__main__":
    main()
