"""Zones firing at the same second: from the due time to the command at the controller, and to its
confirmation.

A throw-away PostgreSQL cluster and Mosquitto; N lighting zones, each one MQTT light, each with a schedule
entry at the same second; the scheduler, the MQTT link and the MQTT command dispatcher of one houqin
process on the real clock; the simulated controllers in their own process (what is measured is houqin,
not the load), which echo each command back as state. "sent" is due → the command reached a subscriber on
the command topics that does nothing else (a process of its own: what one real controller, idle, would
see); "handled" is due → the simulators, 500 controllers in one Python process taking one message at a
time, got to it; "confirmed" is due → houqin recorded the echo. A round with one zone, in the same run, is
the baseline.

    .venv/bin/python bench/scheduler.py [--zones 500]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.mqtt_command_dispatcher import MqttCommandDispatcher  # noqa: E402
from collectors.mqtt_link import MqttLink  # noqa: E402
from collectors.pipeline import Pipeline  # noqa: E402
from collectors.simulators.mqtt_devices import SimulatedMqttDevices  # noqa: E402
from houqin import event_loop  # noqa: E402
from houqin.commands import CommandQueue  # noqa: E402
from houqin.inventory import Inventory, load_inventory  # noqa: E402
from houqin.inventory.model import Device, command_topic  # noqa: E402
from houqin.schedules.book import ScheduleBook  # noqa: E402
from houqin.schedules.commander import ZoneCommander  # noqa: E402
from houqin.schedules.model import ScheduleIn  # noqa: E402
from houqin.schedules.scheduler import Scheduler  # noqa: E402
from houqin.settings import ScheduleSettings  # noqa: E402
from houqin.store import Database, upgrade_database  # noqa: E402
from houqin.store.tables import DeviceCommand  # noqa: E402
from tests.conftest import create_pg_database  # noqa: E402
from tests.servers import mosquitto_server, postgres_server  # noqa: E402

SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_inventory(path: Path, zones: int) -> None:
    lines = ["site: {name: Bench, timezone: Asia/Shanghai}", "tariffs: [{id: flat, price_fen_per_kwh: 56}]", "devices:"]
    lines += [f"  - {{id: l{n}, model: mqtt-lighting, topic: bench/l{n}/state, building: B, poll_interval: 3600}}"
              for n in range(zones)]  # fmt: skip
    lines += ["zones:"] + [f"  - {{id: z{n}, kind: lighting, devices: [l{n}]}}" for n in range(zones)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class TimedDevices(SimulatedMqttDevices):
    """The simulated controllers, noting when each command arrives."""

    def __init__(self, inventory: Inventory, url: str, received: dict[str, list[float]]) -> None:
        super().__init__(inventory, url, SHANGHAI, {})
        self.received = received

    def command(self, device: Device, name: str, payload: bytes) -> None:
        self.received.setdefault(device.id, []).append(time.time())
        super().command(device, name, payload)


def run_tap(inventory_path: str, url: str, stop_after: float, results: Any, ready: Any) -> None:
    """In its own process: when each command arrives at the broker's subscribers (by device)."""
    inventory = load_inventory(Path(inventory_path))
    topics = {command_topic(device, command): device.id for device in inventory.mqtt_devices()
              for command in inventory.model_of(device).commands.values() if command.topic}  # fmt: skip
    received: dict[str, list[float]] = {}

    def on_message(_client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        received.setdefault(topics.get(message.topic, message.topic), []).append(time.time())

    parts = urlsplit(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-tap")
    client.on_message = on_message
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe([(topic, 1) for topic in topics])
    client.loop_start()
    time.sleep(2.0)  # subscribed
    ready.set()
    time.sleep(stop_after)
    client.loop_stop()
    client.disconnect()
    results.put(received)


def run_controllers(inventory_path: str, url: str, stop_after: float, results: Any, ready: Any) -> None:
    """In its own process: the controllers, until ``stop_after`` seconds have passed."""

    async def main() -> dict[str, list[float]]:
        received: dict[str, list[float]] = {}
        devices = TimedDevices(load_inventory(Path(inventory_path)), url, received)
        stop = asyncio.Event()
        task = asyncio.create_task(devices.run(stop))
        await asyncio.sleep(2.0)  # subscribed
        ready.set()
        await asyncio.sleep(stop_after)
        stop.set()
        await task
        return received

    results.put(asyncio.run(main()))


async def fire_round(
    book: ScheduleBook, database: Database, zones: list[str], due: datetime, received: dict[str, list[float]] | None
) -> None:
    local = due.astimezone(SHANGHAI).strftime("%H:%M:%S")
    # A span, so that yesterday's entry at the same second does not already hold the zone on.
    until = (due + timedelta(minutes=30)).astimezone(SHANGHAI).strftime("%H:%M:%S")
    for zone in zones:
        spec = {"name": f"{zone}@{local}", "zone": zone, "day_types": ["school_day", "weekend"],
                "entries": [{"at": local, "until": until, "action": "on"}]}  # fmt: skip
        await book.save(ScheduleIn.model_validate(spec), "bench", datetime.now(UTC))


async def confirmed_at(database: Database, after: datetime) -> dict[str, float]:
    async with database.session() as session:
        rows = await session.execute(
            select(DeviceCommand.device, DeviceCommand.finished_at)
            .where(DeviceCommand.created_at >= after, DeviceCommand.state == "confirmed", DeviceCommand.action == "on")
        )  # fmt: skip
        return {device: finished.timestamp() for device, finished in rows if finished is not None}


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000


async def run(zones: int, workdir: Path) -> None:
    inventory_path = workdir / "devices.yaml"
    write_inventory(inventory_path, zones)
    inventory = load_inventory(inventory_path)
    with postgres_server() as pg, mosquitto_server() as broker:
        database = Database(await create_pg_database(pg))
        await upgrade_database(database)
        url = f"mqtt://127.0.0.1:{broker.port}"
        context = multiprocessing.get_context("spawn")
        results, ready = context.Queue(), context.Event()
        controllers = context.Process(target=run_controllers, args=(str(inventory_path), url, 120.0, results, ready))
        controllers.start()
        await asyncio.to_thread(ready.wait, 30)
        tapped, tap_ready = context.Queue(), context.Event()
        tap = context.Process(target=run_tap, args=(str(inventory_path), url, 110.0, tapped, tap_ready))
        tap.start()
        await asyncio.to_thread(tap_ready.wait, 30)

        queue = CommandQueue(database, inventory)
        pipeline = Pipeline()  # as in houqin run: the dispatcher confirms from the pipeline's batches
        link = MqttLink(url, inventory, pipeline.publish, client_id="houqin-bench")
        dispatcher = MqttCommandDispatcher(queue, link, inventory)
        pipeline.add_sink(dispatcher)
        book = ScheduleBook(database, inventory, SHANGHAI)
        scheduler = Scheduler(book, ZoneCommander(database, inventory, queue), inventory, ScheduleSettings())
        stop = asyncio.Event()
        event_loop.settle()  # as houqin run does before it starts its components
        tasks = [asyncio.create_task(c.run(stop)) for c in (pipeline, link, dispatcher, scheduler)]
        await asyncio.wait_for(link.connected.wait(), 10)
        await asyncio.sleep(3)  # the start-up reconciliation (every zone off) is sent and confirmed

        figures: dict[str, tuple[float, float, float, float]] = {}
        for name, members in (("baseline", ["z0"]), ("all", [f"z{n}" for n in range(zones)])):
            due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
            before = datetime.now(UTC)
            await fire_round(book, database, members, due, None)
            await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 6)
            confirmed = await confirmed_at(database, before)
            figures[name] = (
                *percentiles([t - due.timestamp() for t in confirmed.values()]),
                float(len(confirmed)),
                due.timestamp(),
            )
            for zone in members:  # turn them off again for the next round
                await book.delete(next(s.id for s in await book.schedules(zone)))
            if name == "baseline":
                await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)
        handled: dict[str, list[float]] = await asyncio.to_thread(results.get, True, 120)
        arrived: dict[str, list[float]] = await asyncio.to_thread(tapped.get, True, 120)
        await asyncio.to_thread(controllers.join, 30)
        await asyncio.to_thread(tap.join, 30)
        await database.close()

    def first_after(received: dict[str, list[float]], devices: list[str], due_ts: float) -> tuple[float, float]:
        arrivals = [min((t for t in received.get(d, []) if t >= due_ts - 0.5), default=None) for d in devices]
        delays = [t - due_ts for t in arrivals if t is not None and t - due_ts < 30]
        return percentiles(delays) if len(delays) == len(devices) else (float("nan"), float("nan"))

    lines = []
    sent: dict[str, tuple[float, float]] = {}
    for name, (c50, c99, count, due_ts) in figures.items():
        devices = ["l0"] if name == "baseline" else [f"l{n}" for n in range(zones)]
        sent[name] = first_after(arrived, devices, due_ts)
        h50, h99 = first_after(handled, devices, due_ts)
        lines.append(f"{name}: {int(count)} confirmed; sent p50 {sent[name][0]:.1f} ms p99 {sent[name][1]:.1f} ms; "
                     f"handled by the simulators p50 {h50:.1f} ms p99 {h99:.1f} ms; "
                     f"confirmed p50 {c50:.1f} ms p99 {c99:.1f} ms")  # fmt: skip
    print("\n".join(lines))
    base, full = figures["baseline"], figures["all"]
    print(f"{zones} zones vs 1 zone: sent p99 x{sent['all'][1] / sent['baseline'][1]:.1f}, "
          f"confirmed p99 x{full[1] / base[1]:.1f}")  # fmt: skip
    print(f"zones={zones} sent_p50_ms={sent['all'][0]:.1f} sent_p99_ms={sent['all'][1]:.1f} "
          f"confirmed_p50_ms={full[0]:.1f} confirmed_p99_ms={full[1]:.1f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zones", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="houqin-bench-") as workdir:
        event_loop.run(run(args.zones, Path(workdir)))


if __name__ == "__main__":
    main()
