"""DL/T 645 polling at scale on simulated 2,400-baud RS-485 buses behind DTUs that dial in.

50 buses with 30 single-phase DL/T 645-2007 meters each (six data identifiers a poll), served by
simulators in a separate process that hold each bus for the wire time of every frame (11 bits a byte,
8E1, the wake-up bytes included); each bus has a simulated DTU (same process) that dials houqin's
listener, registers and bridges the bus. houqin polls every bus with its dial-in line + Dlt645Link + bus
poller + pipeline, asking for slightly more polls than the bus can carry, and we measure (a) achieved
polls/s per bus against the bus's wire limit, (b) houqin's CPU per poll against a bare loop doing the
same framing (request bytes, the reply read to its length, checksum and BCD) straight to the same buses,
in this run, and (c) ``reconnect_s``: one DTU hangs up, stays away 3 s (its meters' polls fail), dials
in again: the time from its registration to the bus's next answered poll (``all_back_s``: until every
meter of the bus has answered again, bounded by the bus's own speed).

    .venv/bin/python bench/dlt645_poll.py [--buses 50] [--meters 30] [--seconds 20] [--serial-servers]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from polling import CountingSink, measure  # noqa: E402  (bench/polling.py, beside this script)

from collectors.dial_in.line import DialInLine  # noqa: E402
from collectors.dial_in.listener import DialInListener  # noqa: E402
from collectors.dlt645.link import Dlt645Link  # noqa: E402
from collectors.modbus_poller import ModbusBusPoller  # noqa: E402
from collectors.pipeline import Pipeline  # noqa: E402
from collectors.simulators.dlt645 import SimulatedDlt645Bus, SimulatedDlt645Meter  # noqa: E402
from collectors.simulators.dtu import SimulatedDtu  # noqa: E402
from houqin.dlt645_items import ITEMS_2007  # noqa: E402
from houqin.inventory import load_inventory, load_shipped_profiles  # noqa: E402
from houqin.inventory.model import Device, Gateway  # noqa: E402

MODEL = "dlt645-2007-single-phase"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


BAUD = 2400
WAKE = 4


def address(bus: int, meter: int) -> str:
    return f"{bus:06d}{meter:06d}"


def registration(bus: int) -> bytes:
    return f"BENCH-DTU-{bus:03d}".encode()


def serve_buses(buses: int, meters: int, ports: Any, stop: Any, dial_in: int, drops: Any) -> None:
    """In its own process: the simulated buses and their DTUs, so their CPU is not counted as houqin's."""

    async def main() -> None:
        profiles, _ = load_shipped_profiles()
        served = []
        for bus in range(buses):
            devices = [SimulatedDlt645Meter(address(bus, unit), profiles[MODEL], password="000000")
                       for unit in range(1, meters + 1)]  # fmt: skip
            for device in devices:
                device.values.update(energy=1000.0, voltage=230.0, current=2.0, power=440.0, power_factor=0.95)
            simulated = SimulatedDlt645Bus(devices, baud=BAUD)
            await simulated.start()
            served.append(simulated)
        dtus = []
        if dial_in:
            for index, bus in enumerate(served):
                dtu = SimulatedDtu(registration(index), ("127.0.0.1", dial_in), ("127.0.0.1", bus.port), b"\xfe",
                                   heartbeat_every=60.0, redial=0.2)  # fmt: skip
                await dtu.start()
                dtus.append(dtu)
        ports.put([bus.port for bus in served])
        while not await asyncio.to_thread(stop.wait, 0.05):
            while not drops.empty():
                index, away = drops.get()
                dtus[index].drop(away)
        for dtu in dtus:
            await dtu.stop()
        for bus in served:
            await bus.stop()

    asyncio.run(main())


async def run_houqin(
    ports: list[int], meters: int, interval: float, seconds: float, dial_in: int, drops: Any
) -> tuple[list[float], float, tuple[float, float] | None]:
    inventory = load_inventory(ROOT / "devices.yaml")  # for the shipped profile and tag building
    pipeline = Pipeline()
    sink = CountingSink()
    pipeline.add_sink(sink)
    pollers = []
    lines: list[DialInLine] = []
    for index, port in enumerate(ports):
        if dial_in:
            gateway = Gateway.model_validate({"id": f"bus{index}", "type": "dial_in", "host": "127.0.0.1",
                                              "port": dial_in, "registration": registration(index).decode(),
                                              "heartbeat": "FE", "timeout": 2.0, "baudrate": BAUD,
                                              "parity": "E"})  # fmt: skip
            lines.append(DialInLine(gateway))
        else:
            gateway = Gateway(id=f"bus{index}", type="rtu_over_tcp", host="127.0.0.1", port=port, timeout=2.0,
                              baudrate=BAUD, parity="E")  # fmt: skip
        devices = [Device(id=f"bus{index}-m{unit}", model=MODEL, gateway=gateway.id, address=address(index, unit),
                          building="bench", poll_interval=interval) for unit in range(1, meters + 1)]  # fmt: skip
        link = Dlt645Link(gateway, wake=WAKE, line=lines[-1] if dial_in else None)
        pollers.append(ModbusBusPoller(link, devices, inventory, pipeline.publish))
    reconnect: tuple[float, float] | None = None
    if not dial_in:
        rates, cpu = await measure(pollers, pipeline, sink, interval, seconds)
        return rates, cpu, reconnect
    listener = DialInListener(lines)
    await listener.start()
    await _until(lambda: all(line.connected for line in lines), 60)

    async def drop_and_redial() -> None:
        nonlocal reconnect
        line, poller = lines[0], pollers[0]
        drops.put((0, 3.0))
        await _until(lambda: not line.connected, 10)
        await _until(lambda: line.connected, 10)
        back = time.monotonic()
        polls = poller.polls
        await _until(lambda: poller.polls > polls, 30)
        first = time.monotonic() - back
        await _until(lambda: all(h.online for h in poller.health.values()), 120)
        reconnect = (first, time.monotonic() - back)

    try:
        rates, cpu = await measure(pollers, pipeline, sink, interval, seconds, then=drop_and_redial)
    finally:
        await listener.close()
    return rates, cpu, reconnect


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's DTUs did not do what was asked in time")
        await asyncio.sleep(0.005)


def bare_request(wire_address: bytes, di: int) -> bytes:
    body = bytes([0x68, *wire_address, 0x68, 0x11, 4]) + bytes((b + 0x33) & 0xFF for b in di.to_bytes(4, "little"))
    return b"\xfe" * WAKE + body + bytes([sum(body) & 0xFF, 0x16])


async def run_bare(ports: list[int], meters: int, seconds: float) -> tuple[float, float]:
    """The same reads with a bare loop per bus: hand-built requests, the reply read to its length, its
    checksum checked and its BCD value decoded; as fast as the buses allow."""
    items = [ITEMS_2007[di] for di in load_shipped_profiles()[0][MODEL].dlt645.item_ids()]  # type: ignore[union-attr]
    streams = [await asyncio.open_connection("127.0.0.1", port) for port in ports]
    polls = 0
    deadline = 0.0

    async def loop(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal polls
        unit = 0
        while time.perf_counter() < deadline:
            unit = unit % meters + 1
            wire_address = bytes.fromhex(address(index, unit))[::-1]
            for item in items:
                writer.write(bare_request(wire_address, item.di))
                reply = await reader.readexactly(12 + 4 + item.size)
                assert reply[-2] == sum(reply[:-2]) & 0xFF
                value = bytes((b - 0x33) & 0xFF for b in reply[14:-2])
                int(value[::-1].hex().replace("8", "0", 1) if item.signed else value[::-1].hex())
            polls += 1

    started = time.perf_counter()
    deadline = started + seconds
    cpu_before = time.process_time()
    await asyncio.gather(*(loop(index, reader, writer) for index, (reader, writer) in enumerate(streams)))
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - started
    for _, writer in streams:
        writer.close()
    return polls / wall / len(streams), cpu / max(1, polls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buses", type=int, default=50)
    parser.add_argument("--meters", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--serial-servers", action="store_true", help="buses behind serial servers, not DTUs")
    args = parser.parse_args()
    dial_in = 0 if args.serial_servers else free_port()

    model = load_shipped_profiles()[0][MODEL]
    assert model.dlt645 is not None
    sizes = [ITEMS_2007[di].size for di in model.dlt645.item_ids()]
    # Each item: the request (wake bytes, 12 of frame, 4 of DI) and the reply (12, 4 of DI, the value).
    poll_time = sum((WAKE + 12 + 4) + (12 + 4 + size) for size in sizes) * 11 / BAUD
    limit = 1 / poll_time
    interval = args.meters * poll_time / 1.05  # 5 % more than the bus can carry: the bus is the bottleneck

    context = multiprocessing.get_context("spawn")
    ports_queue, stop, drops = context.Queue(), context.Event(), context.Queue()
    server = context.Process(target=serve_buses, args=(args.buses, args.meters, ports_queue, stop, dial_in, drops),
                             daemon=True)  # fmt: skip
    server.start()
    try:
        ports = ports_queue.get(timeout=120)
        rates, houqin_cpu, reconnect = asyncio.run(
            run_houqin(ports, args.meters, interval, args.seconds, dial_in, drops)
        )
        bare_rate, bare_cpu = asyncio.run(run_bare(ports, args.meters, args.seconds))
    finally:
        stop.set()
        server.join(30)
    ratios = [rate / limit for rate in rates]
    wire_ms = poll_time * 1000
    print(f"buses={args.buses} meters_per_bus={args.meters} items_per_poll={len(sizes)} baud={BAUD} "
          f"bus_limit={limit:.3f} polls/s (poll wire time {wire_ms:.0f} ms) interval={interval:.1f} s")  # fmt: skip
    low, mid, high = min(rates), statistics.median(rates), max(rates)
    print(f"achieved polls/s per bus: min={low:.3f} median={mid:.3f} max={high:.3f}")
    print(f"bare loop, back to back: {bare_rate:.3f} polls/s per bus ({bare_rate / limit:.3f} of the limit)")
    print(f"cpu per poll: houqin={houqin_cpu * 1e6:.0f} us  bare={bare_cpu * 1e6:.0f} us")
    gateways = "dial_in" if dial_in else "serial_servers"
    redial = ""
    if reconnect is not None:
        print(f"a DTU away 3 s dialled in again: its bus answered {reconnect[0]:.3f} s later, every meter of it "
              f"{reconnect[1]:.1f} s later ({args.meters} polls at {wire_ms:.0f} ms of wire each)")  # fmt: skip
        redial = f" reconnect_s={reconnect[0]:.3f} all_back_s={reconnect[1]:.1f}"
    print(f"gateways={gateways} bus_ratio={statistics.mean(ratios):.3f} bus_ratio_min={min(ratios):.3f} "
          f"bare_bus_ratio={bare_rate / limit:.3f} cpu_ratio={houqin_cpu / bare_cpu:.2f}{redial}")  # fmt: skip


if __name__ == "__main__":
    main()
