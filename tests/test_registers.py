"""Register decoding and block-read planning, property-tested."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.read_plan import MAX_BITS, MAX_REGISTERS, ReadBlock, plan_reads
from collectors.registers import BlockDecoder, DecodeError, decode_field, decode_raw, encode_field, encode_raw
from houqin.inventory.model import RegisterField

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
INTEGERS = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}  # fmt: skip


@given(st.sampled_from(sorted(INTEGERS)), st.sampled_from(ORDERS), st.data())
def test_integers_round_trip(data_type: str, order: str, data: st.DataObject) -> None:
    low, high = INTEGERS[data_type]
    value = data.draw(st.integers(low, high))
    registers = encode_raw(value, data_type, order)
    assert all(0 <= word <= 0xFFFF for word in registers)
    assert decode_raw(registers, data_type, order) == value


@given(st.sampled_from(ORDERS), st.floats(width=32, allow_nan=False))
def test_float32_round_trip(order: str, value: float) -> None:
    assert decode_raw(encode_raw(value, "float32", order), "float32", order) == value


@given(st.sampled_from(ORDERS), st.floats(allow_nan=False))
def test_float64_round_trip(order: str, value: float) -> None:
    assert decode_raw(encode_raw(value, "float64", order), "float64", order) == value


@given(st.sampled_from(ORDERS), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
def test_strings_round_trip(order: str, text: str) -> None:
    assert decode_raw(encode_raw(text, "string", order, length=10), "string", order) == text


def test_orders_match_the_vendor_conventions() -> None:
    # 0x41200000 is 10.0 as float32: A=0x41 B=0x20 C=0x00 D=0x00
    assert decode_raw([0x4120, 0x0000], "float32", "ABCD") == 10.0
    assert decode_raw([0x0000, 0x4120], "float32", "CDAB") == 10.0
    assert decode_raw([0x2041, 0x0000], "float32", "BADC") == 10.0
    assert decode_raw([0x0000, 0x2041], "float32", "DCBA") == 10.0
    assert decode_raw([0x0102, 0x0304, 0x0506, 0x0708], "uint64", "CDAB") == 0x0708050603040102
    assert decode_raw([0x4F4B, 0x2100], "string", "ABCD") == "OK!"


def test_scale_offset_and_bits() -> None:
    current = RegisterField(field="current", table="input", address=0, type="uint16", scale=0.01)
    assert decode_field(current, [1234]) == pytest.approx(12.34)
    assert decode_field(current, encode_field(current, 12.34)) == pytest.approx(12.34)
    temp = RegisterField(field="t", address=0, type="int16", scale=0.1, offset=-40)
    assert decode_field(temp, encode_field(temp, 21.5)) == pytest.approx(21.5)
    coil = RegisterField(field="relay", table="coil", address=3, type="bool")
    assert decode_field(coil, [True]) is True
    with pytest.raises(DecodeError):
        decode_field(current, [1, 2])
    with pytest.raises(ValueError, match="does not fit a uint16"):
        encode_field(current, 700.0)


def test_garbage_registers_are_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_raw([70000, 0], "float32")
    with pytest.raises(DecodeError):
        decode_raw([1], "float32")
    nan = decode_raw(list(struct.unpack(">HH", struct.pack(">f", math.nan))), "float32")
    assert isinstance(nan, float) and math.isnan(nan)


TABLES = st.sampled_from(["holding", "input", "coil", "discrete"])


@st.composite
def register_fields(draw: st.DrawFn) -> RegisterField:
    table = draw(TABLES)
    index = draw(st.integers(0, 10_000))
    if table in {"coil", "discrete"}:
        return RegisterField(field=f"f{index}", table=table, address=draw(st.integers(0, 5000)), type="bool")
    data_type = draw(st.sampled_from(["uint16", "int32", "float32", "float64", "string"]))
    length = draw(st.integers(1, 125)) if data_type == "string" else None
    address = draw(st.integers(0, 5000))
    return RegisterField(field=f"f{index}", table=table, address=address, type=data_type, length=length)


@given(st.lists(register_fields(), min_size=1, max_size=60), st.integers(0, 40))
def test_plan_covers_every_field_within_limits(fields: list[RegisterField], max_gap: int) -> None:
    blocks = plan_reads(fields, max_gap=max_gap)
    assert len(blocks) <= len(fields)
    planned = [field for block in blocks for field in block.fields]
    assert sorted(map(id, planned)) == sorted(map(id, fields))
    for block in blocks:
        limit = MAX_BITS if block.table in {"coil", "discrete"} else MAX_REGISTERS
        assert 1 <= block.count <= limit
        for field in block.fields:
            assert field.table == block.table
            assert block.address <= field.address and field.address + field.count <= block.end


def test_contiguous_registers_become_one_request() -> None:
    fields = [RegisterField(field=f"r{i}", address=i * 2, type="float32") for i in range(62)]
    blocks = plan_reads(fields, max_gap=0)
    assert [(b.address, b.count) for b in blocks] == [(0, 124)]
    fields.append(RegisterField(field="r62", address=124, type="float32"))
    assert [(b.address, b.count) for b in plan_reads(fields, max_gap=0)] == [(0, 124), (124, 2)]


NUMERIC = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


@st.composite
def blocks_with_data(draw: st.DrawFn) -> tuple[ReadBlock, list[int]]:
    """A holding-register block of non-overlapping fields of every type and order, and words for it
    (any 16-bit words: NaNs and infinities included)."""
    fields: list[RegisterField] = []
    address = draw(st.integers(0, 1000))
    for index in range(draw(st.integers(1, 12))):
        address += draw(st.integers(0, 3))
        data_type = draw(st.sampled_from([*NUMERIC, "string"]))
        length = draw(st.integers(1, 4)) if data_type == "string" else None
        scaled = draw(st.booleans())
        field = RegisterField(
            field=f"f{index}", address=address, type=data_type, order=draw(st.sampled_from(ORDERS)), length=length,
            scale=0.1 if scaled else 1.0, offset=-40.0 if scaled else 0.0,
        )  # fmt: skip
        fields.append(field)
        address += field.count
    [block] = plan_reads(fields, max_gap=3)
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=block.count, max_size=block.count))
    return block, words


def decode_one_by_one(block: ReadBlock, data: list[int]) -> dict[str, object]:
    values: dict[str, object] = {}
    for field in block.fields:
        value = decode_field(field, data[block.slice_of(field)])
        if not (isinstance(value, float) and not math.isfinite(value)):
            values[field.field] = value
    return values


@given(blocks_with_data())
def test_a_block_decodes_like_its_fields_one_by_one(case: tuple[ReadBlock, list[int]]) -> None:
    block, words = case
    garbage: list[str] = []
    values = BlockDecoder(block).decode(words, garbage.append)
    assert values == decode_one_by_one(block, words)
    assert len(garbage) == len(block.fields) - len(values)
    assert {type(value) for value in values.values()} <= {int, float, str}


def test_a_block_with_a_word_out_of_range_reports_the_fields_it_spoils() -> None:
    fields = [RegisterField(field="a", address=0, type="uint16"), RegisterField(field="b", address=1, type="float32")]
    [block] = plan_reads(fields)
    garbage: list[str] = []
    assert BlockDecoder(block).decode([7, 70000, 0], garbage.append) == {"a": 7}
    assert len(garbage) == 1 and garbage[0].startswith("b:")
    assert BlockDecoder(block).decode([7, 0], garbage.append) == {}  # a short answer decodes nothing
    assert "2 values for 3" in garbage[-1]
