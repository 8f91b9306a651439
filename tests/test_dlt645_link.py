"""The DL/T 645 link over real sockets: reads from the PyPI ``dlt645`` package's meter emulator (a meter
houqin did not write), and a gateway that puts noise, heartbeats, other meters' frames and silence on the
line — never taken for an answer, never wedging the link."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dlt645 import MeterServerService
from dlt645.protocol.protocol import DLT645Protocol
from pydantic import SecretStr

from collectors.dlt645.clock import Dlt645Clock, next_sync
from collectors.dlt645.commands import Dlt645CommandDispatcher
from collectors.dlt645.frame import address_bytes
from collectors.dlt645.link import Dlt645Link
from collectors.link_errors import DeviceRefused, DeviceTimeout, LinkDown
from collectors.modbus_poller import ModbusBusPoller
from collectors.read_steps import Dlt645Item
from collectors.simulators.dlt645 import SimulatedDlt645Bus, SimulatedDlt645Meter
from collectors.simulators.serial_cable import SerialCable
from houqin.commands import CommandQueue, CommandRequest
from houqin.dlt645_items import ITEMS_2007, DataItem, RelayAction, Version
from houqin.inventory import load_inventory
from houqin.inventory.model import Device, Gateway
from houqin.readings import Reading
from houqin.settings import Dlt645Settings
from houqin.store import Database
from houqin.store.tables import CommandSource
from tests.conftest import DEMO_INVENTORY
from tests.live_demo import HOUQIN
from tests.servers import free_port, need
from tests.test_commands import run_until

ROOT = Path(__file__).resolve().parent.parent
METER = "000012345678"
ENERGY, IMPORT, VOLTAGE, CURRENT, POWER = (
    ITEMS_2007[di] for di in (0x00000000, 0x00010000, 0x02010100, 0x02020100, 0x02030000)
)


def gateway(port: int, timeout: float = 0.5) -> Gateway:
    return Gateway.model_validate({"id": "dorm3-bus1", "type": "rtu_over_tcp", "host": "127.0.0.1", "port": port,
                                   "timeout": timeout, "baudrate": 2400, "parity": "E"})  # fmt: skip


@pytest.fixture
def peer_meter() -> Iterator[tuple[MeterServerService, int]]:
    service = MeterServerService.new_tcp_server("127.0.0.1", 0, timeout=5.0)
    # The package's string addresses go on the wire in the order written (the standard sends the lowest
    # two digits first), so it is handed the wire bytes of the printed address.
    service.set_address(address_bytes(METER))
    service.set_00(ENERGY.di, 1234.56)
    service.set_00(IMPORT.di, 1200.5)
    service.set_02(VOLTAGE.di, 229.7)
    service.set_02(CURRENT.di, 4.321)
    service.set_02(POWER.di, 0.9876)
    assert service.server.start()
    yield service, service.server.port
    service.server.stop()


async def test_reads_from_a_meter_houqin_did_not_write(peer_meter: tuple[MeterServerService, int]) -> None:
    service, port = peer_meter
    link = Dlt645Link(gateway(port))
    try:
        assert await link.read(METER, ENERGY) == pytest.approx(1234.56)
        assert await link.read(METER, IMPORT) == pytest.approx(1200.5)
        assert await link.read(METER, VOLTAGE) == pytest.approx(229.7)
        assert await link.read(METER, CURRENT) == pytest.approx(4.321)
        assert await link.read(METER, POWER) == pytest.approx(987.6)  # kW on the wire, W in houqin
        assert await link.read_address() == METER
        service.set_00(ENERGY.di, 1234.99)  # the meter advances
        assert await link.read(METER, ENERGY) == pytest.approx(1234.99)
        assert link.timeouts == 0 and link.requests == 7 and link.reconnects == 1
    finally:
        await link.close()


async def test_a_meter_that_refuses_says_why(peer_meter: tuple[MeterServerService, int]) -> None:
    _, port = peer_meter
    link = Dlt645Link(gateway(port))
    try:
        unknown = DataItem(0x02FF0000, "nothing", 2, 0)  # a DI the meter does not keep
        with pytest.raises(DeviceRefused, match=r"meter 000012345678 refused DI 02FF0000: no requested data"):
            await link.read(METER, unknown)
        assert await link.read(METER, ENERGY) == pytest.approx(1234.56)  # the link carries on
    finally:
        await link.close()


class NoisyGateway:
    """A gateway whose line carries what real ones do: each request is answered by the next ``script``
    entry, its pieces sent 50 ms apart (a reply split across TCP segments), a number a pause in seconds."""

    def __init__(self) -> None:
        self.port = free_port()
        self.script: list[list[bytes | float]] = []
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> NoisyGateway:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.read(256):
                for piece in self.script.pop(0) if self.script else []:
                    if isinstance(piece, float):
                        await asyncio.sleep(piece)
                        continue
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()


def reply(address: str, di: int, value: bytes) -> bytes:
    """A meter's reply, built by the ``dlt645`` package."""
    return bytes(DLT645Protocol.build_frame(address_bytes(address), 0x91, di.to_bytes(4, "little") + value))


@pytest.fixture
async def noisy() -> AsyncIterator[NoisyGateway]:
    async with NoisyGateway() as server:
        yield server


async def test_noise_heartbeats_and_other_meters_frames_are_never_the_answer(noisy: NoisyGateway) -> None:
    link = Dlt645Link(gateway(noisy.port))
    try:
        genuine = reply(METER, ENERGY.di, ENERGY.encode(88.8))
        other = reply("000012345679", ENERGY.di, ENERGY.encode(99.9))  # another meter's, e.g. a late one
        broken = bytearray(reply(METER, ENERGY.di, ENERGY.encode(77.7)))
        broken[-2] ^= 0x5A
        noisy.script = [[b"\x00\xff\x68junk" + b"\xfe" + bytes(broken) + other + genuine[:9], genuine[9:]]]
        assert await link.read(METER, ENERGY) == pytest.approx(88.8)
        assert link.stray_frames == 1 and link.bad_frames == 1 and link.garbage_bytes >= 5
        # Silence: a timeout, the connection dropped; the late reply on the old connection answers nothing.
        late = reply(METER, ENERGY.di, ENERGY.encode(66.6))
        noisy.script = [[0.8, late]]  # the answer comes after the timeout, on a connection given up
        with pytest.raises(DeviceTimeout, match=r"no answer within 0\.5 s"):
            await link.read(METER, ENERGY)
        await asyncio.sleep(0.5)
        noisy.script = [[reply(METER, ENERGY.di, ENERGY.encode(12.5))]]
        assert await link.read(METER, ENERGY) == pytest.approx(12.5)
        assert noisy.connections == 2 and link.timeouts == 1
    finally:
        await link.close()


async def test_an_unreachable_gateway_backs_off() -> None:
    link = Dlt645Link(gateway(free_port(), timeout=0.2), backoff_base=5.0)
    try:
        with pytest.raises(LinkDown, match="cannot connect"):
            await link.read(METER, ENERGY)
        with pytest.raises(LinkDown, match="next attempt in"):
            await link.read(METER, ENERGY)
        assert link.reconnects == 1
    finally:
        await link.close()


async def test_the_bus_poller_reads_a_645_meter_into_readings(
    peer_meter: tuple[MeterServerService, int], tmp_path: Path
) -> None:
    """The same poller as for Modbus buses: one reading per poll with the model's fields, health included."""
    service, port = peer_meter
    service.set_02(0x02060000, 0.987)
    (tmp_path / "campus.yaml").write_text(f"""\
site: {{name: Dorm 3}}
tariffs: [{{id: flat, price_fen_per_kwh: 60}}]
gateways:
  - {{id: dorm3-bus1, type: rtu_over_tcp, host: 127.0.0.1, port: {port}, baudrate: 2400, parity: E, timeout: 0.5}}
devices:
  - {{id: d3-101-meter, model: dlt645-2007-single-phase, gateway: dorm3-bus1, address: "{METER}", building: dorm-3,
     room: D3-101}}
  - {{id: d3-102-meter, model: dlt645-2007-single-phase, gateway: dorm3-bus1, address: "000012345699",
     building: dorm-3}}
rooms:
  - {{id: D3-101, building: dorm-3, floor: 1, meter: d3-101-meter, tariff: flat}}
""")  # fmt: skip
    inventory = load_inventory(tmp_path / "campus.yaml")
    readings: list[Reading] = []

    async def publish(reading: Reading) -> None:
        readings.append(reading)

    devices = inventory.devices_on("dorm3-bus1")
    poller = ModbusBusPoller(Dlt645Link(inventory.gateways["dorm3-bus1"]), devices, inventory, publish)
    reading = await poller.poll_once(inventory.devices["d3-101-meter"])
    assert reading is not None and reading.tags["room"] == "D3-101"
    assert reading.fields == pytest.approx({"energy": 1234.56, "voltage": 229.7, "current": 4.321, "power": 987.6,
                                            "power_factor": 0.987, "relay_closed": True})  # fmt: skip
    # A meter not on the bus: the emulator answers no other address, so it times out and is offline.
    assert await poller.poll_once(inventory.devices["d3-102-meter"]) is None
    assert poller.health["d3-102-meter"].consecutive_failures == 1
    health = [r for r in readings if r.tags["kind"] == "device_health"]
    assert [(r.device, r.fields["online"]) for r in health] == [("d3-101-meter", True), ("d3-102-meter", False)]
    await poller.link.close()


DORM3 = """\
site: {name: Dorm 3}
tariffs: [{id: flat, price_fen_per_kwh: 60}]
gateways:
  - {id: dorm3-bus1, type: rtu_over_tcp, host: 127.0.0.1, port: PORT, baudrate: 2400, parity: E, timeout: 1.0}
devices:
  - {id: d3-101-meter, model: dlt645-2007-single-phase, gateway: dorm3-bus1, address: "000000310101", building: dorm-3}
  - {id: d3-102-meter, model: dlt645-2007-single-phase, gateway: dorm3-bus1, address: "000000310102", building: dorm-3}
rooms:
  - {id: D3-101, building: dorm-3, floor: 1, meter: d3-101-meter, tariff: flat}
  - {id: D3-102, building: dorm-3, floor: 1, meter: d3-102-meter, tariff: flat}
"""


async def test_a_reply_split_over_follow_on_frames_is_joined(tmp_path: Path) -> None:
    """A meter that splits a reply (the follows bit): the link asks for the rest with 0x12, sequence 1, 2,
    and reads the value the parts make."""
    model = load_inventory(write_dorm3(tmp_path, 1)).models["dlt645-2007-single-phase"]
    meter = SimulatedDlt645Meter("000000310101", model, password="135790")
    meter.values["energy"] = 4321.09
    meter.split_after = 1  # four value bytes: the first frame and three follow-ons
    bus = SimulatedDlt645Bus([meter])
    await bus.start()
    link = Dlt645Link(gateway(bus.port))
    try:
        assert await link.read("000000310101", ENERGY) == pytest.approx(4321.09)
        assert link.requests == 4 and bus.requests == 4
        meter.split_after = None
        assert await link.read("000000310101", ENERGY) == pytest.approx(4321.09)
    finally:
        await link.close()
        await bus.stop()


async def test_relay_commands_trip_and_close_and_a_wrong_password_fails_at_once(
    database: Database, tmp_path: Path
) -> None:
    """A room's cut-off and restore on a 645 meter through the command queue, at 2400 baud: the trip is
    confirmed by status word 3 showing the relay open, the close by it closed; a meter whose password
    differs refuses, and the command fails at once with the meter's reason (a fault), not retried."""
    model = load_inventory(write_dorm3(tmp_path, 1)).models["dlt645-2007-single-phase"]
    meters = [SimulatedDlt645Meter("000000310101", model, password="135790"),
              SimulatedDlt645Meter("000000310102", model, password="246802")]  # fmt: skip
    bus = SimulatedDlt645Bus(meters, baud=2400)
    await bus.start()
    inventory = load_inventory(write_dorm3(tmp_path, bus.port))
    failures: list[str] = []

    async def on_failed(command: object) -> None:
        failures.append(str(getattr(command, "device", "")))

    queue = CommandQueue(database, inventory, max_attempts=3, backoff=0.05, on_failed=on_failed)
    link = Dlt645Link(inventory.gateways["dorm3-bus1"])
    settings = Dlt645Settings(password=SecretStr("135790"), password_level=2, operator="00000042")
    dispatcher = Dlt645CommandDispatcher(queue, {"dorm3-bus1": link}, inventory, settings, ZoneInfo("Asia/Shanghai"),
                                         every=0.05, confirm_gap=0.05)  # fmt: skip
    try:
        now = datetime.now(UTC)
        cut = await queue.enqueue(CommandRequest("d3-101-meter", "relay", "off", CommandSource.BILLING), now)
        refused = await queue.enqueue(CommandRequest("d3-102-meter", "relay", "off", CommandSource.BILLING), now)

        async def finished() -> bool:
            return all(c.state in {"confirmed", "failed"} for c in await queue.recent())

        await run_until(dispatcher, finished)
        states = {c.id: (c.state, c.attempts, c.last_error) for c in await queue.recent()}
        assert states[cut.id][:2] == ("confirmed", 1) and meters[0].relay_closed is False
        assert states[refused.id][:2] == ("failed", 1), states  # not retried: the password stays wrong
        assert "password wrong" in (states[refused.id][2] or "") and failures == ["d3-102-meter"]
        assert meters[1].relay_closed is True and meters[0].relay_commands == [RelayAction.TRIP]
        restore = await queue.enqueue(CommandRequest("d3-101-meter", "relay", "on", CommandSource.BILLING),
                                      datetime.now(UTC))  # fmt: skip

        async def restored() -> bool:
            return (await queue.recent("d3-101-meter"))[0].state == "confirmed"

        await run_until(dispatcher, restored)
        assert meters[0].relay_closed is True and (await queue.recent("d3-101-meter"))[0].id == restore.id
        # No password configured: nothing is sent, and the command says what to set.
        unset = Dlt645CommandDispatcher(queue, {"dorm3-bus1": link}, inventory, Dlt645Settings(),
                                        ZoneInfo("Asia/Shanghai"), every=0.05)  # fmt: skip
        await queue.enqueue(CommandRequest("d3-101-meter", "relay", "off", CommandSource.USER), datetime.now(UTC))

        async def failed() -> bool:
            return (await queue.recent("d3-101-meter"))[0].state == "failed"

        await run_until(unset, failed)
        assert "HOUQIN_DLT645__PASSWORD" in ((await queue.recent("d3-101-meter"))[0].last_error or "")
        assert meters[0].relay_closed is True
    finally:
        await link.close()
        await bus.stop()


def write_dorm3(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "dorm3.yaml"
    path.write_text(DORM3.replace("PORT", str(port)), encoding="utf-8")
    return path


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HOUQIN, "probe", "--inventory", str(DEMO_INVENTORY), *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # fmt: skip


async def test_probe_reads_a_meter_before_it_is_in_the_inventory(peer_meter: tuple[MeterServerService, int]) -> None:
    """``houqin probe`` (a real process) against the emulator houqin did not write: the address asked of the
    bus, then every item of the profile with its unit; an error is one plain line (this emulator answers a
    wrong address with "other error"; a real bus says nothing, and the probe says "no answer")."""
    _, port = peer_meter
    found = await asyncio.to_thread(probe, "--host", "127.0.0.1", "--port", str(port),
                                    "--model", "dlt645-2007-single-phase")  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert f"address: {METER}" in found.stdout and "energy           1234.56 kWh" in found.stdout
    assert "power            987.6 W" in found.stdout
    wrong = await asyncio.to_thread(probe, "--host", "127.0.0.1", "--port", str(port), "--model",
                                    "dlt645-2007-single-phase", "--address", "000099999999")  # fmt: skip
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "probe: meter 000099999999 refused DI 00000000: other error"
    # The demo's dorm 3 is behind a DTU that dials in: the probe listens for it, and says when none came.
    absent = await asyncio.to_thread(probe, "d3-101-meter", "--wait", "1")
    assert absent.returncode == 1, absent.stdout
    assert "dorm3-f1: no DTU dialled in with registration 'HQ-D3F1-0001' within 1 s" in absent.stderr


async def test_the_time_is_broadcast_daily_at_a_quiet_hour(tmp_path: Path) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    at = dt_time(3, 0)
    assert next_sync(at, datetime(2026, 12, 1, 2, 59, tzinfo=zone)) == datetime(2026, 12, 1, 3, 0, tzinfo=zone)
    assert next_sync(at, datetime(2026, 12, 1, 3, 0, tzinfo=zone)) == datetime(2026, 12, 2, 3, 0, tzinfo=zone)
    model = load_inventory(write_dorm3(tmp_path, 1)).models["dlt645-2007-single-phase"]
    meters = [SimulatedDlt645Meter(f"00000031010{n}", model, password="135790") for n in (1, 2)]
    bus = SimulatedDlt645Bus(meters, baud=9600)
    await bus.start()
    link = Dlt645Link(gateway(bus.port))
    try:
        clock = Dlt645Clock([link], at, zone)
        await clock.broadcast()
        await asyncio.sleep(0.2)  # no answer comes: the meters set their clocks as the frame arrives
        local = datetime.now(zone).replace(tzinfo=None)
        for meter in meters:
            assert meter.clock is not None and abs((local - meter.clock).total_seconds()) < 2
        assert clock.broadcasts == 1 and await link.read(meters[0].address, ENERGY) == 0.0  # the bus still answers
    finally:
        await link.close()
        await bus.stop()


async def test_reads_over_a_serial_line_at_2400_8e1_from_a_meter_houqin_did_not_write() -> None:
    """A serial port (a socat pseudo-terminal pair) at 2400 baud, even parity: the ``dlt645`` package's RTU
    meter server on the far end, houqin's link on this end, through pyserial."""
    need("socat", "socat")
    cable = SerialCable("dlt645")
    await cable.start()
    service = MeterServerService.new_rtu_server(cable.device_end, 8, 1, 2400, "E", 1.0)
    service.set_address(address_bytes(METER))
    service.set_00(ENERGY.di, 4321.09)
    service.set_02(VOLTAGE.di, 231.4)
    assert service.server.start()
    serial_gateway = Gateway.model_validate({"id": "dorm3-serial", "type": "rtu_serial", "device": cable.houqin_end,
                                             "baudrate": 2400, "parity": "E", "timeout": 1.0})  # fmt: skip
    link = Dlt645Link(serial_gateway)
    try:
        assert await link.read(METER, ENERGY) == pytest.approx(4321.09)
        assert await link.read(METER, VOLTAGE) == pytest.approx(231.4)
        assert await link.read_address() == METER
        assert link.timeouts == 0 and link.reconnects == 1
    finally:
        await link.close()
        service.server.stop()
        await cable.stop()


async def test_a_value_that_is_not_bcd_is_counted_as_garbage_not_a_timeout(noisy: NoisyGateway) -> None:
    """The meter answered, with a value that is not BCD: the poll keeps its other fields and the bad one is
    reported as garbage (counted and logged); it is neither retried nor a failed poll."""
    link = Dlt645Link(gateway(noisy.port))
    try:
        noisy.script = [[reply(METER, ENERGY.di, bytes.fromhex("1A000000"))], [reply(METER, ENERGY.di,
                                                                                    ENERGY.encode(5.5))]]  # fmt: skip
        garbage: list[str] = []
        step = Dlt645Item(link, ENERGY, Version.V2007)
        device = Device.model_validate({"id": "m", "model": "dlt645-2007-single-phase", "gateway": "g",
                                        "address": METER, "building": "b"})  # fmt: skip
        assert await step.read(device, garbage.append) == {}
        assert garbage == ["DI 00000000: 1a 00 00 00 is not BCD"] and link.timeouts == 0
        assert await step.read(device, garbage.append) == {"energy": pytest.approx(5.5)}
    finally:
        await link.close()
