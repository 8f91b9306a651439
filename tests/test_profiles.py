"""The shipped meter profiles schools buy: each names its source, and each decodes what its vendor's
table says the registers hold (raw words worked out by hand from the table, not by houqin's encoder),
and reads back through a Modbus link from a simulated meter on a real socket."""

from __future__ import annotations

import struct

import pytest

from collectors.modbus_link import ModbusLink
from collectors.read_plan import plan_reads
from collectors.registers import BlockDecoder, Value
from collectors.simulators.modbus import SimulatedGateway, SimulatedModbusDevice
from houqin.inventory import load_shipped_profiles
from houqin.inventory.model import DeviceModel, Gateway

PROFILES, ISSUES = load_shipped_profiles()


def decode(model: DeviceModel, words: dict[int, int]) -> dict[str, Value]:
    """Decode the registers ``words`` (address -> 16-bit word) as a poll of ``model`` would."""

    def garbage(what: str) -> None:
        raise AssertionError(what)

    fields: dict[str, Value] = {}
    for block in plan_reads(model.registers, max_gap=model.max_read_gap):
        data = [words.get(block.address + offset, 0) for offset in range(block.count)]
        fields.update(BlockDecoder(block).decode(data, garbage))
    return fields


def float_words(value: float) -> tuple[int, int]:
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return high, low


def test_every_profile_loads_and_names_its_source() -> None:
    assert ISSUES == []
    for name in ("chint-ddsu666", "chint-dtsu666", "acrel-adl400", "acrel-ddsy1352", "cjt188-cold-water-valve",
                 "dlt645-2007-single-phase", "dlt645-1997-single-phase"):  # fmt: skip
        assert PROFILES[name].source, name
    assert "relay" in PROFILES["dlt645-2007-single-phase"].commands
    assert "valve" in PROFILES["cjt188-cold-water-valve"].commands


def test_the_vendor_tables_decode_by_hand() -> None:
    # DDSY1352 (Acrel manual 8.1): energy UINT32 x0.01 kWh at 0000H; U x0.1 V; I x0.01 A; P INT16 x0.001 kW.
    ddsy = decode(PROFILES["acrel-ddsy1352"], {0x0000: 0x0001, 0x0001: 0x86A0, 0x000B: 2205, 0x000C: 512,
                                                0x000D: 0xFC18, 0x0010: 0x03B6})  # fmt: skip
    assert ddsy["energy"] == pytest.approx(1000.0)  # 0x000186A0 = 100000 x 0.01
    assert ddsy["voltage"] == pytest.approx(220.5) and ddsy["current"] == pytest.approx(5.12)
    assert ddsy["power"] == pytest.approx(-1000.0)  # 0xFC18 = -1000 x 0.001 kW, in W
    assert ddsy["power_factor"] == pytest.approx(0.95)  # 0x03B6 = 950
    # DDSU666 (function 04, float32): P is in kW on the wire, W in houqin.
    u, p, e = float_words(229.5), float_words(1.25), float_words(1234.5)
    ddsu = decode(PROFILES["chint-ddsu666"], {0x2000: u[0], 0x2001: u[1], 0x2004: p[0], 0x2005: p[1],
                                               0x4000: e[0], 0x4001: e[1]})  # fmt: skip
    assert ddsu["voltage"] == pytest.approx(229.5) and ddsu["power"] == pytest.approx(1250.0)
    assert ddsu["energy"] == pytest.approx(1234.5)
    # DTSU666: raw floats with scale factors (Ua x0.1 V, Pt x0.1 W).
    ua, pt = float_words(2301.0), float_words(45000.0)
    dtsu = decode(PROFILES["chint-dtsu666"], {0x2006: ua[0], 0x2007: ua[1], 0x2012: pt[0], 0x2013: pt[1]})
    assert dtsu["voltage_l1"] == pytest.approx(230.1) and dtsu["power"] == pytest.approx(4500.0)
    # ADL400: energy as integers of 0.1 kWh.
    adl = decode(PROFILES["acrel-adl400"], {0x0842: 0x0000, 0x0843: 12345})
    assert adl["energy"] == pytest.approx(1234.5)


@pytest.mark.parametrize("name", ["chint-ddsu666", "chint-dtsu666", "acrel-adl400", "acrel-ddsy1352"])
async def test_a_simulated_meter_reads_back_through_a_link(name: str) -> None:
    model = PROFILES[name]
    meter = SimulatedModbusDevice(7, model)
    expected = {register.field: 0.9 if register.field == "power_factor" else round(100.0 + 10 * index, 1)
                for index, register in enumerate(model.registers)}  # fmt: skip
    meter.values.update(expected)
    server = SimulatedGateway([meter], rtu=True)
    await server.start()
    link = ModbusLink(Gateway(id="g", type="rtu_over_tcp", host="127.0.0.1", port=server.port, timeout=1.0))
    try:
        read: dict[str, Value] = {}
        for block in plan_reads(model.registers, max_gap=model.max_read_gap):
            data = await link.read(7, block.table, block.address, block.count)
            read.update(BlockDecoder(block).decode(data, lambda what: None))
        assert read == pytest.approx(expected)
    finally:
        await link.close()
        await server.stop()
