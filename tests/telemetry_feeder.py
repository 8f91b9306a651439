"""A houqin process that only feeds the InfluxDB store, for the outage test: reading ``i`` belongs to
device ``m{i % 5}``, is stamped ``T0 + i ms`` and carries ``index = i``. It prints ``handed i`` once the
store has taken reading ``i``, stops gracefully on SIGTERM, and with ``--drain`` waits for its spool to
empty before it exits.

    python -m tests.telemetry_feeder --influx URL --data DIR --first 0 --count 1000 --rate 500 [--drain]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from houqin.readings import Reading
from houqin.settings import InfluxSettings, TelemetrySettings
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.spool import Spool

T0 = datetime(2026, 11, 1, tzinfo=UTC)
DEVICES = 5


def reading(index: int) -> Reading:
    device = f"m{index % DEVICES}"
    tags = {"kind": "electricity", "device": device, "building": "Dorm 1"}
    return Reading(device, T0 + timedelta(milliseconds=index), {"index": float(index)}, tags)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--influx", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=10**9)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args()

    telemetry = TelemetrySettings(batch_points=100, flush_seconds=0.2, write_timeout_seconds=2.0,
                                  replay_points_per_second=100_000)  # fmt: skip
    store = InfluxStore(
        InfluxSettings(url=args.influx, api="v1", database="outage"),
        telemetry,
        Spool(args.data / "spool", telemetry.spool_max_bytes),
    )
    stop, store_stop = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    running = asyncio.create_task(store.run(store_stop))
    started = asyncio.get_running_loop().time()
    for offset in range(args.count):
        if stop.is_set():
            break
        index = args.first + offset
        await store.consume([reading(index)])
        print(f"handed {index}", flush=True)
        delay = started + (offset + 1) / args.rate - asyncio.get_running_loop().time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    if args.drain:
        while not stop.is_set() and len(store.spool):
            await asyncio.sleep(0.05)
    store_stop.set()
    await running
    print(f"stopped spool={store.spool.points}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
