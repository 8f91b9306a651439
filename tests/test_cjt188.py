"""CJ/T 188: frames byte for byte as the published worked examples give them (a cold-water meter's read
and its valve open and close, a heat meter's read), the current data decoded into houqin's units, the
link against simulated meters on a real socket and through a DTU process, refusals and garbage, the
probe as a real process, and the inventory's checks."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from collectors.cjt188.frame import Frame, FrameReader
from collectors.cjt188.link import Cjt188Link
from collectors.dial_in.line import DialInLine
from collectors.link_errors import DeviceRefused, DeviceTimeout
from collectors.simulators.cjt188 import SimulatedCjt188Bus, SimulatedCjt188Meter
from houqin.cjt188_meters import BadReadingError, MeterType, Status, StatusBits, ValveAction, decode_current
from houqin.inventory import Inventory
from houqin.inventory.model import DeviceModel, Gateway
from tests.live_demo import HOUQIN
from tests.test_dial_in import dtu, listening, until
from tests.test_inventory import errors_of, write

ROOT = Path(__file__).resolve().parent.parent
METER = "78330011223344"  # the worked example's meter: 0011223344, maker 7833


def checksum(frame: bytes) -> int:
    return sum(frame) & 0xFF


def test_requests_are_the_worked_examples_byte_for_byte() -> None:
    # Read the current data of cold-water meter 0011223344 (maker 7833): the example's 20 bytes.
    read = Frame(0x10, METER, 0x01, bytes([0x1F, 0x90, 0x00])).encode(wake=4)
    assert read == bytes.fromhex("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
    # The same of a heat meter (type 20), sequence number 01: checksum 91.
    heat = Frame(0x20, METER, 0x01, bytes([0x1F, 0x90, 0x01])).encode(wake=0)
    assert heat == bytes.fromhex("68 20 44 33 22 11 00 33 78 01 03 1F 90 01 91 16")
    # Open and close the valve of meter 1505900569 (maker 7833): 55 opens (checksum 50), 99 closes (94).
    opened = Frame(0x10, "78331505900569", 0x04, bytes.fromhex("A0 17 01 55")).encode(wake=0)
    assert opened == bytes.fromhex("68 10 69 05 90 05 15 33 78 04 04 A0 17 01 55 50 16")
    closed = Frame(0x10, "78331505900569", 0x04, bytes.fromhex("A0 17 01 99")).encode(wake=0)
    assert closed == bytes.fromhex("68 10 69 05 90 05 15 33 78 04 04 A0 17 01 99 94 16")
    assert ValveAction.OPEN.code == 0x55 and ValveAction.CLOSE.code == 0x99


def test_the_worked_examples_replies_decode() -> None:
    # The example's reply: 556677.00 m³ now and at the settlement day, 2015-05-11 22:01:31, status 00 00.
    body = bytes.fromhex("68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C"
                         " 31 01 22 11 05 15 20 00 00")  # fmt: skip
    [frame] = FrameReader().feed(b"\xfe\xfe" + body + bytes([checksum(body), 0x16]))
    assert (frame.meter_type, frame.address, frame.control) == (0x10, METER, 0x81)
    fields = decode_current(MeterType.COLD_WATER, frame.data[3:], StatusBits.LSB_FIRST)
    assert fields == {"total": 556677.0, "settlement_total": 556677.0, "valve_closed": False, "valve_fault": False,
                      "battery_low": False}  # fmt: skip
    # A heat meter's 43 bytes: 123456.78 kWh at settlement and now, then power, flow, volume, temperatures.
    heat = (bytes.fromhex("78 56 34 12 05") * 2 + bytes.fromhex("00 50 00 00 17") + bytes.fromhex("50 12 00 00 35")
            + bytes.fromhex("00 00 10 00 2C") + bytes.fromhex("00 65 00") + bytes.fromhex("00 45 00")
            + bytes.fromhex("00 12 00") + bytes.fromhex("31 01 22 11 05 15 20") + bytes([0x04, 0x00]))  # fmt: skip
    fields = decode_current(MeterType.HEAT, heat, StatusBits.LSB_FIRST)
    assert fields["heat_energy"] == pytest.approx(123456.78) and fields["heat_power"] == pytest.approx(50.0)
    assert fields["flow_rate"] == pytest.approx(12.5) and fields["total"] == pytest.approx(1000.0)
    assert fields["supply_temp"] == pytest.approx(65.0) and fields["return_temp"] == pytest.approx(45.0)
    assert fields["hours"] == 1200 and fields["battery_low"] is True
    # Litres, and a gigajoule heat meter, come out in m³ and kWh.
    litres = bytes.fromhex("00 50 01 00 29") + bytes.fromhex("00 00 00 00 2C") + bytes(7) + bytes(2)
    assert decode_current(MeterType.HOT_WATER, litres, StatusBits.LSB_FIRST)["total"] == pytest.approx(0.15)


def test_status_bits_both_ways_and_garbage() -> None:
    assert Status.decode(b"\x01\x00", StatusBits.LSB_FIRST) == Status(True, False, False)
    assert Status.decode(b"\x03\x00", StatusBits.LSB_FIRST) == Status(False, True, False)
    assert Status.decode(b"\x40\x00", StatusBits.MSB_FIRST) == Status(
        True, False, False
    )  # closed, numbered from the top
    assert Status.decode(b"\xc0\x00", StatusBits.MSB_FIRST) == Status(False, True, False)
    assert Status.decode(b"\x20\x00", StatusBits.MSB_FIRST) == Status(False, False, True)
    for bits in StatusBits:
        for status in (Status(True, False, True), Status(False, True, False), Status(False, False, False)):
            assert Status.decode(status.encode(bits), bits) == status
    good = bytes.fromhex("00 77 66 55 2C 00 77 66 55 2C") + bytes(9)
    with pytest.raises(BadReadingError, match="is not BCD"):
        decode_current(MeterType.COLD_WATER, bytes.fromhex("00 7A 66 55 2C") + good[5:], StatusBits.LSB_FIRST)
    with pytest.raises(BadReadingError, match="unit byte 05 is not a unit of volume"):
        decode_current(MeterType.COLD_WATER, good[:4] + b"\x05" + good[5:], StatusBits.LSB_FIRST)
    with pytest.raises(BadReadingError, match="19 bytes, got 18"):
        decode_current(MeterType.COLD_WATER, good[:-1], StatusBits.LSB_FIRST)
    # Noise, wake-up bytes and a broken frame around a good one: the good one comes out, the rest is counted.
    body = Frame(0x10, METER, 0x81, bytes.fromhex("1F 90 00") + good).encode(wake=2)
    broken = bytearray(body)
    broken[-2] ^= 0xFF
    reader = FrameReader()
    frames = reader.feed(b"\x11\x22" + bytes(broken) + b"\xfe\xfe" + body[:9])
    frames += reader.feed(body[9:])
    assert len(frames) == 1 and frames[0].address == METER
    assert reader.bad_frames == 1 and reader.garbage > 0


def model(inventory: Inventory) -> DeviceModel:
    return inventory.models["cjt188-cold-water-valve"]


def tcp_gateway(port: int) -> Gateway:
    return Gateway.model_validate({"id": "water-bus", "type": "rtu_over_tcp", "host": "127.0.0.1", "port": port,
                                   "timeout": 0.5, "baudrate": 2400, "parity": "E"})  # fmt: skip


async def test_reads_and_the_valve_against_simulated_meters(demo_inventory: Inventory) -> None:
    profile = model(demo_inventory)
    assert profile.cjt188 is not None
    meters = [SimulatedCjt188Meter(METER, profile, valve_seconds=0.2),
              SimulatedCjt188Meter("78330011223345", profile)]  # fmt: skip
    meters[0].values.update(total=1234.56, settlement_total=1200.0, battery_low=True)
    bus = SimulatedCjt188Bus(meters, baud=2400)
    await bus.start()
    link = Cjt188Link(tcp_gateway(bus.port))
    try:
        fields = await link.read_current(METER, profile.cjt188)
        assert fields["total"] == pytest.approx(1234.56) and fields["settlement_total"] == 1200.0
        assert fields["battery_low"] is True and fields["valve_closed"] is False
        answered = await link.valve(METER, profile.cjt188, ValveAction.CLOSE)
        assert answered.valve_closed is False  # the valve is still moving when the meter answers
        await asyncio.sleep(0.3)
        assert (await link.read_current(METER, profile.cjt188))["valve_closed"] is True
        # A meter that wants the DI the other way round refuses ours: said, with its status.
        other = profile.cjt188.model_copy(update={"read_di": "90 1F"})
        with pytest.raises(
            DeviceRefused, match=r"meter 78330011223344 refused read 901F \(valve closed, battery low\)"
        ):
            await link.read_current(METER, other)
        with pytest.raises(DeviceTimeout, match=r"meter 78330000000000 on water-bus: no answer within 0\.5 s"):
            await link.read_current("78330000000000", profile.cjt188)
        meters[1].offline = True
        assert await link.read_address(MeterType.COLD_WATER) == METER  # alone on the bus now
        assert link.stray_frames == 0
    finally:
        await link.close()
        await bus.stop()


async def test_through_a_dtu_process(demo_inventory: Inventory) -> None:
    from tests.servers import free_port

    profile = model(demo_inventory)
    assert profile.cjt188 is not None
    meter = SimulatedCjt188Meter(METER, profile)
    meter.values["total"] = 77.7
    bus = SimulatedCjt188Bus([meter], baud=2400)
    await bus.start()
    gateway = Gateway.model_validate({"id": "water-dtu", "type": "dial_in", "host": "127.0.0.1", "port": free_port(),
                                      "registration": "4638", "registration_format": "hex", "heartbeat": "FE",
                                      "timeout": 1.0})  # fmt: skip
    line = DialInLine(gateway)
    link = Cjt188Link(gateway, line=line)
    async with listening(line):
        try:
            with dtu(gateway.port, bus.port, "4638", "--registration-hex"):
                await until(lambda: line.connected, "the DTU did not dial in")
                assert (await link.read_current(METER, profile.cjt188))["total"] == pytest.approx(77.7)
                await until(lambda: line.heartbeats >= 2, "no heartbeats")
                assert (await link.valve(METER, profile.cjt188, ValveAction.CLOSE)).valve_fault is False
        finally:
            await link.close()
            await bus.stop()


async def test_probe_reads_a_water_meter_as_a_real_process(demo_inventory: Inventory) -> None:
    meter = SimulatedCjt188Meter(METER, model(demo_inventory))
    meter.values.update(total=321.5, valve_closed=True)
    bus = SimulatedCjt188Bus([meter])
    await bus.start()
    try:
        probed = await asyncio.to_thread(
            subprocess.run,
            [*HOUQIN, "probe", "--host", "127.0.0.1", "--port", str(bus.port), "--model", "cjt188-cold-water-valve"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
    finally:
        await bus.stop()
    assert probed.returncode == 0, probed.stderr
    assert f"address: {METER}" in probed.stdout
    assert "total            321.5 m3" in probed.stdout and "valve_closed     True" in probed.stdout


CJT188_SITE = """\
site: {name: CJ/T 188 checks}
gateways:
  - {id: water, type: rtu_over_tcp, host: 10.0.0.9, port: 4196}
models:
  - {name: meter-a, kind: electricity, protocol: cjt188, cjt188: {meter_type: electricity}}
  - {name: meter-b, kind: water, protocol: cjt188, cjt188: {meter_type: cold_water, read_di: "90 10"}}
  - {name: meter-c, kind: water, protocol: cjt188, cjt188: {meter_type: gas}}
  - {name: meter-d, kind: water, protocol: cjt188, cjt188: {meter_type: cold_water},
     commands: {valve: {state_field: valve_closed, actions: {open: trip}}}}
devices:
  - {id: w1, model: cjt188-cold-water-valve, gateway: water, address: "783300112233", building: b}
  - {id: w2, model: cjt188-cold-water-valve, gateway: water, unit: 3, building: b}
"""


def test_cjt188_mistakes_are_named_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, CJT188_SITE)
    text = "\n".join(errors_of(path))
    assert f"{path}:5: models[0].cjt188.meter_type: unsupported CJ/T 188 meter type 'electricity'" in text, text
    assert f"{path}:6: models[1].cjt188.read_di: '90 10' is not DI 901F in either byte order" in text, text
    assert f"{path}:7: models[2].kind: a gas meter is a gas device, not water" in text, text
    assert "models[3].commands.valve.actions.open: one of close, open" in text, text
    assert f"{path}:11: devices[0].address: a CJ/T 188 address is 14 digits, got 12" in text, text
    assert "devices[1].unit: model 'cjt188-cold-water-valve' is a CJ/T 188 meter: give its address" in text, text
