"""The DL/T 645 codec: byte-exact frames derived from the standard's rules (each byte of the golden frames
is worked out in its comment), cross-checked both ways against the PyPI package ``dlt645`` (an
implementation houqin did not write), and a stream reader that survives noise, heartbeats and halves."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from dlt645.common.transform import float_to_bcd
from dlt645.protocol.protocol import DLT645Protocol

from collectors.dlt645.frame import Frame, FrameError, FrameReader, MeterError, address_bytes
from collectors.dlt645.requests import (
    MeterRefused,
    RelayCredentials,
    check_relay_reply,
    follow_on_request,
    parse_address,
    parse_read,
    read_address_request,
    read_request,
    relay_request,
    time_sync,
)
from houqin.dlt645_items import ITEMS_1997, ITEMS_2007, BadValueError, RelayAction, Version

ENERGY, VOLTAGE, CURRENT, POWER = (ITEMS_2007[di] for di in (0x00000000, 0x02010100, 0x02020100, 0x02030000))
STATUS_3 = ITEMS_2007[0x04000503]


def test_golden_frames() -> None:
    # Read-address to whoever is on the bus: 68, AA×6, 68, C=13, L=00; CS = 68+68+6×AA+13 = 0x4DF → DF.
    assert read_address_request().encode() == bytes.fromhex("FEFEFEFE 68AAAAAAAAAAAA68 1300 DF16")
    # Forward active energy (DI 00 01 00 00, sent low byte first, each +33: 33 33 34 33) from the wildcard:
    # CS = D0 + 3FC + 11 + 04 + CD = 0x5AE → AE. The frame every 645 tutorial shows.
    forward = Frame("AAAAAAAAAAAA", 0x11, bytes.fromhex("00000100"))
    assert forward.encode() == bytes.fromhex("FEFEFEFE 68AAAAAAAAAAAA68 1104 33333433 AE16")
    # Address 000012345678 is 78 56 34 12 00 00 on the wire. Combined energy 00000000: data 33 33 33 33.
    # CS = 68+78+56+34+12+00+00+68+11+04+33×4 = 0x2C5 → C5.
    assert read_request("000012345678", ENERGY).encode(wake=0) == bytes.fromhex("6878563412000068 1104 33333333 C516")
    # 1997: forward energy 9010 with control 01, two DI bytes 10 90 → 43 C3.
    # CS = 68+78+56+34+12+68+01+02+43+C3 = 0x2ED → ED.
    old = read_request("000012345678", ITEMS_1997[0x9010], Version.V1997).encode(wake=0)
    assert old == bytes.fromhex("6878563412000068 0102 43C3 ED16")
    # Follow-on 1 of combined energy (0x12): DI 33 33 33 33 then sequence 01 as 34; L=05.
    # CS = 68+78+56+34+12+68+12+05+33×4+34 = 0x2FB → FB.
    follow = follow_on_request("000012345678", ENERGY, 1).encode(wake=0)
    assert follow == bytes.fromhex("6878563412000068 1205 3333333334 FB16")
    # Time 2026-12-01 20:30:05 to 99×6: ss mm hh DD MM YY = 05 30 20 01 12 26, each +33.
    sync = time_sync(datetime(2026, 12, 1, 20, 30, 5)).encode(wake=0)
    assert sync[:10] == bytes.fromhex("68999999999999680806") and sync[10:16] == bytes.fromhex("386353344559")
    assert sync[16] == sum(sync[:16]) & 0xFF and sync[17] == 0x16
    # Trip: PA=02, password 123456 as 56 34 12, operator 87654321 as 21 43 65 87, N1=1A, N2=00, expiry
    # 2026-12-01 20:35:00 as 00 35 20 01 12 26; sixteen bytes, each +33.
    credentials = RelayCredentials(level=2, password="123456", operator="87654321")
    trip = relay_request("000012345678", RelayAction.TRIP, credentials, datetime(2026, 12, 1, 20, 35)).encode(wake=0)
    meant = bytes.fromhex("02563412 21436587 1A00 003520011226")
    assert trip[:10] == bytes.fromhex("68785634120000681C10")
    assert trip[10:26] == bytes((byte + 0x33) & 0xFF for byte in meant)
    assert trip[26] == sum(trip[:26]) & 0xFF and trip[27] == 0x16


def test_the_codec_agrees_with_an_implementation_houqin_did_not_write() -> None:
    rng = random.Random(645)
    for _ in range(500):
        address = "".join(rng.choice("0123456789") for _ in range(12))
        control = rng.choice([0x11, 0x91, 0xB1, 0xD1, 0x13, 0x93, 0x1C, 0x9C, 0xDC])
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        ours = Frame(address, control, data).encode(wake=rng.randrange(5))
        theirs = bytes(
            DLT645Protocol.build_frame(address_bytes(address), control, data, preamble_count=ours.count(0xFE, 0, 4))
        )
        assert ours == theirs
        parsed = DLT645Protocol.deserialize(ours)
        assert parsed is not None and parsed.ctrl_code == control and bytes(parsed.data) == data
    # Their value encoder and our decoder (and the reverse) agree, signs included.
    for item, fmt, value in ((ENERGY, "XXXXXX.XX", 123456.78), (VOLTAGE, "XXX.X", 229.7),
                             (CURRENT, "XXX.XXX", -12.345), (CURRENT, "XXX.XXX", 5.002)):  # fmt: skip
        wire = bytes(float_to_bcd(value, fmt, "little"))
        assert item.decode(wire) == pytest.approx(value) and item.encode(value) == wire
    assert POWER.decode(bytes(float_to_bcd(-1.2345, "XX.XXXX", "little"))) == pytest.approx(-1234.5)  # kW → W


def test_replies_are_read_and_refusals_named() -> None:
    reply = Frame("000012345678", 0x91, bytes.fromhex("00000000") + ENERGY.encode(1234.56))
    assert parse_read(reply, "000012345678", ENERGY) == pytest.approx(1234.56)
    with pytest.raises(FrameError, match="a reply from meter 000012345679"):
        parse_read(Frame("000012345679", 0x91, reply.data), "000012345678", ENERGY)
    with pytest.raises(FrameError, match="asked 02010100"):
        parse_read(reply, "000012345678", VOLTAGE)
    with pytest.raises(MeterRefused, match="no requested data"):
        parse_read(Frame("000012345678", 0xD1, bytes([0x02])), "000012345678", ENERGY)
    with pytest.raises(MeterRefused, match="password wrong") as refused:
        check_relay_reply(Frame("000012345678", 0xDC, bytes([0x04])), "000012345678", RelayAction.TRIP)
    assert refused.value.error == MeterError.PASSWORD
    check_relay_reply(Frame("000012345678", 0x9C), "000012345678", RelayAction.TRIP)
    assert parse_address(Frame("000012345678", 0x93, address_bytes("000012345678"))) == "000012345678"
    assert STATUS_3.decode(bytes([0x10, 0x00])) == 0x10  # bit 4: the relay is open
    with pytest.raises(BadValueError, match="not BCD"):
        ENERGY.decode(bytes.fromhex("1A000000"))
    with pytest.raises(BadValueError, match="expected 4"):
        ENERGY.decode(bytes(3))
    for wrong in ("12345", "00001234567A", "1234567890123"):
        with pytest.raises(FrameError, match="12 decimal digits"):
            address_bytes(wrong)
    with pytest.raises(ValueError, match="6 digits"):
        RelayCredentials(level=2, password="12345", operator="00000000")


def test_the_reader_finds_frames_among_noise_halves_and_heartbeats() -> None:
    one = Frame("000012345678", 0x91, bytes.fromhex("00000000") + ENERGY.encode(42.0)).encode(wake=2)
    two = Frame("000012345679", 0x91, bytes.fromhex("00010102") + VOLTAGE.encode(230.1)).encode(wake=0)
    broken = bytearray(one)
    broken[-2] ^= 0xFF  # a wrong checksum
    stream = b"\x00\x68\x12garbage" + one + b"\xfe" + bytes(broken) + two[:7]
    reader = FrameReader()
    found = reader.feed(stream)
    assert [frame.address for frame in found] == ["000012345678"]
    assert reader.pending >= 7  # the start of the second frame, held
    found = reader.feed(b"\xfe" * 0 + two[7:] + one[:3])
    assert [frame.address for frame in found] == ["000012345679"]
    assert reader.bad_frames == 1 and reader.garbage > 0
    # A DTU's heartbeat (a lone FE) between frames is not garbage; a 68 inside an address misleads nothing.
    reader = FrameReader()
    tricky = Frame("680068006800", 0x91, bytes.fromhex("00000000") + ENERGY.encode(1.0)).encode(wake=0)
    assert [f.address for f in reader.feed(b"\xfe" + tricky + b"\xfe")] == ["680068006800"]
    assert reader.garbage == 0
    # Byte by byte, the same frames.
    reader = FrameReader()
    frames = [frame for byte in one + two for frame in reader.feed(bytes([byte]))]
    assert [f.address for f in frames] == ["000012345678", "000012345679"]
