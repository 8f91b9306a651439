"""Modbus polling at scale on simulated 9,600-baud RS-485 buses.

50 buses (RTU-over-TCP gateways) with 30 Eastron SDM120 meters each, served by simulators in a separate
process that hold each bus for the exact wire time of every frame. houqin polls every bus with its
ModbusLink + ModbusBusPoller + pipeline, asking for slightly more polls than the bus can carry, and we
measure (a) achieved polls/s per bus against the bus's theoretical limit and (b) houqin's CPU per poll
against a bare pymodbus loop doing the same block reads over the same buses, measured in this run.

Then the same houqin polling with ``telemetry.durable`` (houqin's InfluxDB store on a real influxd, each
poll waiting until its reading is fsynced to the spool before its bus moves on), against the same with the
default store: ``durable_bus_ratio`` is durable polls/s ÷ default polls/s.

    .venv/bin/python bench/modbus_poll.py [--buses 50] [--meters 30] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.servers (a real influxd)

from polling import CountingSink, measure  # bench/polling.py, beside this script  # noqa: E402
from pymodbus import FramerType  # noqa: E402
from pymodbus.client import AsyncModbusTcpClient  # noqa: E402

from collectors.modbus_link import ModbusLink  # noqa: E402
from collectors.modbus_poller import ModbusBusPoller  # noqa: E402
from collectors.pipeline import Pipeline  # noqa: E402
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice  # noqa: E402
from collectors.simulators.rs485 import Rs485Bus, blocks_of  # noqa: E402
from houqin.inventory import load_inventory, load_shipped_profiles  # noqa: E402
from houqin.inventory.model import Device, Gateway  # noqa: E402
from houqin.settings import InfluxSettings, TelemetrySettings  # noqa: E402
from houqin.telemetry.influx_store import InfluxStore  # noqa: E402
from houqin.telemetry.spool import Spool  # noqa: E402
from tests.servers import influxd_server  # noqa: E402

MODEL = "eastron-sdm120"


def serve_buses(buses: int, meters: int, ports: Any, stop: Any) -> None:
    """In its own process: the simulated buses, so their CPU is not counted as houqin's."""

    async def main() -> None:
        profiles, _ = load_shipped_profiles()
        gateways = []
        for _ in range(buses):
            devices = [SimulatedModbusDevice(unit, profiles[MODEL]) for unit in range(1, meters + 1)]
            for device in devices:
                device.values.update(voltage=230.0, current=2.0, power=440.0, energy=1000.0)
            gateway = SimulatedGateway(devices, rtu=True, bus=Rs485Bus(baudrate=9600))
            await gateway.start()
            gateways.append(gateway)
        ports.put([gateway.port for gateway in gateways])
        await asyncio.to_thread(stop.wait)
        for gateway in gateways:
            await gateway.stop()

    asyncio.run(main())


async def run_houqin(
    ports: list[int], meters: int, interval: float, seconds: float, store: InfluxStore | None = None
) -> tuple[list[float], float]:
    """Polls/s per bus and CPU per poll; with ``store``, readings also go to it (settling if it is durable)."""
    inventory = load_inventory(ROOT / "devices.yaml")  # for the shipped profile and tag building
    pipeline = Pipeline()
    sink = CountingSink()
    pipeline.add_sink(sink)
    durable = store is not None and store.settings.durable
    if store is not None:
        pipeline.add_sink(store, settle=durable)
    settled = pipeline.settled if durable else None
    pollers = []
    for index, port in enumerate(ports):
        gateway = Gateway(id=f"bus{index}", type="rtu_over_tcp", host="127.0.0.1", port=port, timeout=2.0)
        devices = [
            Device(
                id=f"bus{index}-m{unit}",
                model=MODEL,
                gateway=gateway.id,
                unit=unit,
                building="bench",
                poll_interval=interval,
            )
            for unit in range(1, meters + 1)
        ]
        pollers.append(ModbusBusPoller(ModbusLink(gateway), devices, inventory, pipeline.publish, settled=settled))
    if store is None:
        return await measure(pollers, pipeline, sink, interval, seconds)
    stop = asyncio.Event()
    writer = asyncio.create_task(store.run(stop))
    try:
        return await measure(pollers, pipeline, sink, interval, seconds)
    finally:
        stop.set()
        await writer


def stored_polls(ports: list[int], meters: int, interval: float, seconds: float) -> dict[bool, list[float]]:
    """Polls/s per bus into the InfluxDB store on a real influxd, by default and durable."""
    rates = {}
    with influxd_server() as influxd, tempfile.TemporaryDirectory() as spools:
        for durable in (False, True):
            influx = InfluxSettings(url=influxd.url, api="v1", database=f"poll_{int(durable)}")
            settings = TelemetrySettings(durable=durable)
            store = InfluxStore(influx, settings, Spool(Path(spools) / str(durable), settings.spool_max_bytes))
            rates[durable], _ = asyncio.run(run_houqin(ports, meters, interval, seconds, store))
    return rates


async def run_bare(
    ports: list[int], meters: int, blocks: list[tuple[str, int, int]], seconds: float
) -> tuple[float, float]:
    """The same block reads with bare pymodbus clients, one loop per bus, as fast as the buses allow."""
    clients = [AsyncModbusTcpClient("127.0.0.1", port=port, framer=FramerType.RTU, timeout=2, retries=0)
               for port in ports]  # fmt: skip
    for client in clients:
        await client.connect()
    polls = 0
    deadline = 0.0

    async def loop(client: AsyncModbusTcpClient) -> None:
        nonlocal polls
        unit = 0
        while time.perf_counter() < deadline:
            unit = unit % meters + 1
            for _, address, count in blocks:
                response = await client.read_input_registers(address, count=count, device_id=unit)
                assert not response.isError()
            polls += 1

    started = time.perf_counter()
    deadline = started + seconds
    cpu_before = time.process_time()
    await asyncio.gather(*(loop(client) for client in clients))
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    return polls / wall / len(clients), cpu / max(1, polls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buses", type=int, default=50)
    parser.add_argument("--meters", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    profiles, _ = load_shipped_profiles()
    model = profiles[MODEL]
    from collectors.read_plan import plan_reads

    plan = plan_reads(model.registers, max_gap=model.max_read_gap)
    bus = Rs485Bus(baudrate=9600)
    poll_time = bus.poll_time(blocks_of(model.registers, model.max_read_gap))
    limit = 1 / poll_time
    # Ask for 5 % more than the bus can carry, so the bus, not the schedule, is the bottleneck.
    interval = args.meters * poll_time / 1.05

    context = multiprocessing.get_context("spawn")
    ports_queue, stop = context.Queue(), context.Event()
    server = context.Process(target=serve_buses, args=(args.buses, args.meters, ports_queue, stop), daemon=True)
    server.start()
    try:
        ports = ports_queue.get(timeout=120)
        rates, houqin_cpu = asyncio.run(run_houqin(ports, args.meters, interval, args.seconds))
        blocks = [(block.table, block.address, block.count) for block in plan]
        bare_rate, bare_cpu = asyncio.run(run_bare(ports, args.meters, blocks, args.seconds))
        stored = stored_polls(ports, args.meters, interval, args.seconds)
    finally:
        stop.set()
        server.join(30)
    ratios = [rate / limit for rate in rates]
    wire_ms = poll_time * 1000
    print(f"buses={args.buses} meters_per_bus={args.meters} blocks_per_poll={len(plan)} "
          f"bus_limit={limit:.2f} polls/s (poll wire time {wire_ms:.1f} ms) interval={interval:.2f} s")  # fmt: skip
    low, mid, high = min(rates), statistics.median(rates), max(rates)
    print(f"achieved polls/s per bus: min={low:.2f} median={mid:.2f} max={high:.2f}")
    print(f"bare pymodbus loop, back to back: {bare_rate:.2f} polls/s per bus ({bare_rate / limit:.3f} of the limit)")
    print(f"cpu per poll: houqin={houqin_cpu * 1e6:.0f} us  bare pymodbus={bare_cpu * 1e6:.0f} us")
    for durable, polled in stored.items():
        print(f"into InfluxDB, durable={durable}: median {statistics.median(polled):.2f} polls/s per bus")
    print(f"bus_ratio={statistics.mean(ratios):.3f} bus_ratio_min={min(ratios):.3f} "
          f"bare_bus_ratio={bare_rate / limit:.3f} cpu_ratio={houqin_cpu / bare_cpu:.2f} "
          f"durable_bus_ratio={statistics.mean(stored[True]) / statistics.mean(stored[False]):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
