"""Gateways that dial in, against real DTU processes (``collectors.simulators.dtu`` run as its own
process) carrying the frames of a meter houqin did not write (the PyPI ``dlt645`` emulator), of houqin's
simulated DL/T 645 bus, and of a Modbus RTU server (pymodbus's): identification by registration packet,
heartbeats, a DTU killed mid-poll and dialling again, two DTUs claiming one id, strangers and silence."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from dlt645 import MeterServerService

from collectors.dial_in.line import DialInLine
from collectors.dial_in.listener import DialInListener, ListenError
from collectors.dlt645.link import Dlt645Link
from collectors.link_errors import LinkDown
from collectors.modbus_link import ModbusLink
from collectors.modbus_poller import ModbusBusPoller
from collectors.simulators.dlt645 import SimulatedDlt645Bus, SimulatedDlt645Meter
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from houqin.inventory import Inventory, load_inventory
from houqin.inventory.model import Gateway
from houqin.readings import Reading
from tests.servers import free_port
from tests.test_dlt645_link import ENERGY, METER, VOLTAGE, peer_meter  # noqa: F401 - the emulator fixture
from tests.test_inventory import errors_of, line_of, write

ROOT = Path(__file__).resolve().parent.parent
REGISTRATION = "868123045678901"  # a DTU that names itself by its IMEI


def dial_in(port: int, registration: str = REGISTRATION, **extra: object) -> Gateway:
    return Gateway.model_validate({"id": "d3-dtu", "type": "dial_in", "host": "127.0.0.1", "port": port,
                                   "registration": registration, "heartbeat": "FE", "timeout": 0.5,
                                   "identify_timeout": 1, **extra})  # fmt: skip


@contextmanager
def dtu(
    houqin_port: int, bus_port: int, registration: str = REGISTRATION, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A DTU process: dials houqin, registers, beats every 0.2 s, bridges the bus; redials after 0.2 s."""
    process = subprocess.Popen(
        [sys.executable, "-m", "collectors.simulators.dtu", "--houqin", f"127.0.0.1:{houqin_port}", "--bus",
         f"127.0.0.1:{bus_port}", "--registration", registration, "--heartbeat", "FE", "--heartbeat-every", "0.2",
         "--redial", "0.2", *extra],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@asynccontextmanager
async def listening(*lines: DialInLine) -> AsyncIterator[DialInListener]:
    listener = DialInListener(list(lines))
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


async def until(condition: Callable[[], bool], what: str, seconds: float = 10) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, what
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_a_meter_houqin_did_not_write_is_read_through_a_dtu(peer_meter: tuple[MeterServerService, int]) -> None:  # noqa: F811
    _, bus_port = peer_meter
    gateway = dial_in(free_port())
    line = DialInLine(gateway)
    link = Dlt645Link(gateway, line=line)
    async with listening(line):
        with pytest.raises(LinkDown, match="d3-dtu: DTU has not dialled in"):
            await link.read(METER, ENERGY)
        with dtu(gateway.port, bus_port):
            await until(lambda: line.connected, "the DTU did not dial in")
            assert await link.read(METER, ENERGY) == pytest.approx(1234.56)
            assert await link.read(METER, VOLTAGE) == pytest.approx(229.7)
            await until(lambda: line.heartbeats >= 3, "the heartbeats were not recognised")
            assert await link.read(METER, ENERGY) == pytest.approx(1234.56)  # heartbeats between reads: dropped
            assert link.bad_frames == 0 and link.timeouts == 0
        await until(lambda: not line.connected, "the DTU's end was not noticed")
        with pytest.raises(LinkDown, match="d3-dtu: DTU disconnected"):
            await link.read(METER, ENERGY)


def simulated_bus(inventory: Inventory, count: int = 4) -> tuple[SimulatedDlt645Bus, list[SimulatedDlt645Meter]]:
    model = inventory.models["dlt645-2007-single-phase"]
    meters = [SimulatedDlt645Meter(f"0000003101{n:02d}", model, "314159") for n in range(1, count + 1)]
    return SimulatedDlt645Bus(meters, baud=9600), meters


def poller_inventory(tmp_path: Path, port: int, count: int = 4) -> Inventory:
    devices = "".join(
        f'  - {{id: m{n}, model: dlt645-2007-single-phase, gateway: d3-dtu, address: "0000003101{n:02d}", '
        f"building: dorm-3, poll_interval: 1}}\n"
        for n in range(1, count + 1)
    )
    text = (f"site: {{name: Dial-in}}\ngateways:\n  - {{id: d3-dtu, type: dial_in, host: 127.0.0.1, port: {port}, "
            f"registration: '{REGISTRATION}', heartbeat: FE, timeout: 0.3, identify_timeout: 1}}\n"
            f"devices:\n{devices}")  # fmt: skip
    return load_inventory(write(tmp_path, text))


async def test_a_dtu_killed_mid_poll_dials_again_and_its_meters_are_polled_at_once(tmp_path: Path) -> None:
    """SIGKILL while a request is on the bus: the poll fails, the meters go offline and their breakers
    open; when a DTU dials in again the bus is polled within a request's time, not at the next probe."""
    inventory = poller_inventory(tmp_path, free_port())
    bus, _ = simulated_bus(inventory)
    await bus.start()
    gateway = inventory.gateways["d3-dtu"]
    line = DialInLine(gateway)
    readings: list[Reading] = []

    async def keep(reading: Reading) -> None:
        readings.append(reading)

    poller = ModbusBusPoller(Dlt645Link(gateway, line=line), list(inventory.devices.values()), inventory, keep)
    stop = asyncio.Event()
    async with listening(line):
        running = asyncio.create_task(poller.run(stop))
        try:
            with dtu(gateway.port, bus.port) as first:
                await until(lambda: poller.polls >= 4, "the bus was not polled through the DTU")
                requests = bus.requests
                await until(lambda: bus.requests > requests, "no request reached the bus")
                first.kill()  # mid-poll: a request is on the bus, its reply has nowhere to go
                first.wait()
            await until(lambda: all(h.open_until for h in poller.health.values()), "the breakers did not open")
            assert not any(h.online for h in poller.health.values())
            offline = [r for r in readings if r.tags.get("kind") == "device_health" and r.fields["online"] is False]
            assert {r.device for r in offline} == {"m1", "m2", "m3", "m4"}
            polls = poller.polls
            with dtu(gateway.port, bus.port):
                await until(lambda: line.connected, "the DTU did not dial in again")
                back = await until(lambda: poller.polls > polls, "the bus was not polled after the redial", 5)
                await until(lambda: all(h.online for h in poller.health.values()), "not every meter is back", 10)
            assert back < 1.0, f"polled {back:.2f} s after the DTU dialled in again"
        finally:
            stop.set()
            await running
            await bus.stop()
    assert line.connects == 2


async def test_two_dtus_claiming_one_id_take_turns_and_say_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inventory = poller_inventory(tmp_path, free_port(), count=1)
    bus, _ = simulated_bus(inventory, count=1)
    await bus.start()
    gateway = inventory.gateways["d3-dtu"]
    line = DialInLine(gateway)
    link = Dlt645Link(gateway, line=line)
    caplog.set_level(logging.INFO, logger="collectors.dial_in")
    async with listening(line):
        try:
            with dtu(gateway.port, bus.port), dtu(gateway.port, bus.port):
                await until(lambda: line.replacements >= 4, "the two DTUs did not replace each other")
                answered = 0
                for _ in range(20):  # the bus is not wedged: most reads still get through
                    try:
                        await link.read("000000310101", ENERGY)
                        answered += 1
                    except LinkDown:
                        await asyncio.sleep(0.05)
                assert answered >= 5
        finally:
            await link.close()
            await bus.stop()
    said = [
        r for r in caplog.records if "two DTUs with one registration id?" in r.getMessage() and r.levelname == "WARNING"
    ]
    assert len(said) == 1, [r.getMessage() for r in caplog.records]


async def test_strangers_and_silence_are_refused_and_logged_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = dial_in(free_port())
    line = DialInLine(gateway)
    caplog.set_level(logging.INFO, logger="collectors.dial_in")
    bus, _ = simulated_bus(poller_inventory(tmp_path, gateway.port, count=1), count=1)
    await bus.start()
    async with listening(line) as listener:
        with dtu(gateway.port, bus.port, "NOT-OURS-1"):  # redials every 0.2 s
            await until(lambda: listener.refused >= 5, "the stranger was not refused")
        refusals = [r.getMessage() for r in caplog.records if "refused a connection" in r.getMessage()]
        assert len(refusals) == 1 and "unknown registration (it sent 'NOT-OURS-1';" in refusals[0]
        # Nothing at all: closed after identify_timeout (1 s).
        with socket.create_connection(("127.0.0.1", gateway.port)) as silent:
            silent.settimeout(5)
            start = time.monotonic()
            assert await asyncio.to_thread(silent.recv, 16) == b""
            assert 0.8 < time.monotonic() - start < 3
        assert any("nothing identifiable within 1 s" in r.getMessage() for r in caplog.records)
        # Heartbeats before the registration, and a registration split across segments, are fine.
        with socket.create_connection(("127.0.0.1", gateway.port)) as slow:
            for piece in (b"\xfe", b"\xfe", REGISTRATION[:5].encode(), REGISTRATION[5:].encode()):
                slow.sendall(piece)
                await asyncio.sleep(0.05)
            await until(lambda: line.connected, "a registration in pieces was not recognised")
            assert line.peer is not None and line.heartbeats == 0
    await bus.stop()


async def test_a_heartbeat_inside_a_reply_is_counted_and_the_bus_goes_on(tmp_path: Path) -> None:
    inventory = poller_inventory(tmp_path, free_port(), count=2)
    bus, _ = simulated_bus(inventory, count=2)
    await bus.start()
    gateway = inventory.gateways["d3-dtu"]
    line = DialInLine(gateway)
    link = Dlt645Link(gateway, line=line)
    poller = ModbusBusPoller(link, list(inventory.devices.values()), inventory, lambda r: asyncio.sleep(0))
    stop = asyncio.Event()
    async with listening(line):
        with dtu(gateway.port, bus.port, REGISTRATION, "--heartbeat-in-reply-every", "5"):
            await until(lambda: line.connected, "the DTU did not dial in")
            running = asyncio.create_task(poller.run(stop))
            try:
                await until(lambda: poller.polls >= 6, "the bus did not go on polling", 20)
            finally:
                stop.set()
                await running
                await bus.stop()
    assert link.bad_frames >= 2  # the broken replies were counted...
    assert poller.failed_polls == 0  # ...and each poll's retry got the value


async def test_modbus_rtu_through_a_dtu(demo_inventory: Inventory) -> None:
    meter = SimulatedModbusDevice(1, demo_inventory.models["eastron-sdm120"])
    relay = SimulatedModbusDevice(11, demo_inventory.models["generic-relay"])
    meter.values["voltage"] = 231.5
    server = SimulatedGateway([meter, relay], rtu=True)
    await server.start()
    gateway = dial_in(free_port(), "DTU-MODBUS-7", heartbeat_format="ascii", heartbeat="PING")
    line = DialInLine(gateway)
    link = ModbusLink(gateway, line=line)
    async with listening(line):
        try:
            with pytest.raises(LinkDown, match="has not dialled in"):
                await link.read(1, "input", 0, 2)
            with dtu(gateway.port, server.port, "DTU-MODBUS-7"):
                await until(lambda: line.connected, "the DTU did not dial in")
                words = await link.read(1, "input", 0, 2)
                assert len(words) == 2
                relay_command = demo_inventory.models["generic-relay"].commands["relay"]
                assert relay_command.table == "coil" and relay_command.address is not None
                await link.write(11, "coil", relay_command.address, [False])
                assert await link.read(11, "coil", relay_command.address, 1) == [False]
                await link.write(11, "coil", relay_command.address, [True])
                assert await link.read(11, "coil", relay_command.address, 1) == [True]
                assert link.timeouts == 0
        finally:
            await link.close()
            await server.stop()


def test_a_port_in_use_names_the_gateways(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        line = DialInLine(dial_in(taken.getsockname()[1]))

        async def start() -> None:
            await DialInListener([line]).start()

        with pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1:\d+ for dial-in gateway\(s\) d3-dtu: "):
            asyncio.run(start())


DIAL_IN_SITE = """\
site: {name: Dial-in checks}
gateways:
  - {id: a, type: dial_in, port: 17001, registration: DTU1}
  - {id: b, type: dial_in, port: 17001, registration: DTU1}
  - {id: c, type: dial_in, port: 17001, registration: DTU10}
  - {id: d, type: dial_in, port: 17001, host: 127.0.0.1, registration: DTU2}
  - {id: e, type: dial_in, registration: DTU3}
  - {id: f, type: dial_in, port: 17002, registration: 'zz', registration_format: hex}
  - {id: g, type: rtu_over_tcp, host: 10.0.0.5, port: 4196, registration: DTU4}
  - {id: h, type: dial_in, port: 17002, registration: DTU5, heartbeat: DTU, heartbeat_format: ascii}
"""


def test_dial_in_mistakes_are_named_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, DIAL_IN_SITE)
    errors = errors_of(path)
    text = "\n".join(errors)

    def at(gateway_id: str) -> str:
        return f"{path}:{line_of(DIAL_IN_SITE, f'id: {gateway_id},')}: gateways[{ord(gateway_id) - ord('a')}]"

    assert f"{at('b')}.registration: registration 'DTU1' is already gateway 'a'" in text, text
    assert f"{at('c')}.registration: registration 'DTU10' and 'DTU1' of gateway 'a' on port 17001: one starts" in text
    assert f"{at('d')}.port: port 17001 is already listened on at 0.0.0.0 for gateway 'a'" in text
    assert f"{at('e')}.port: a dial_in gateway needs the port houqin listens on" in text
    assert "registration: 'zz' is not hex bytes" in text
    assert f"{at('g')}.registration: only a dial_in gateway" in text
    assert "heartbeat: the registration packet starts with the heartbeat" in text
    assert len(errors) == 7, text
