"""Register decoding: Modbus registers to field values, and back (for writes and the simulators).

Word and byte order, named after the four bytes of a 32-bit value ``A B C D`` (A most significant):

- ``ABCD``: high word first, each word high byte first (the Modbus default, big-endian);
- ``CDAB``: low word first, each word high byte first ("word swap", common on meters);
- ``BADC``: high word first, bytes swapped inside each word;
- ``DCBA``: low word first, bytes swapped (little-endian).

For 64-bit values "low word first" reverses all four words. pymodbus's ``convert_from_registers``
knows word order only, so the byte swap is done here.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

from collectors.read_plan import ReadBlock
from houqin.inventory.model import REGISTER_COUNT, RegisterField

_STRUCT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
    "float32": ">f", "float64": ">d",
}  # fmt: skip

Value = float | int | bool | str


class DecodeError(ValueError):
    """Registers that cannot be a value of the field (wrong count, out-of-range words)."""


def _to_bytes(registers: list[int], order: str) -> bytes:
    words = list(registers)
    if order in {"CDAB", "DCBA"}:
        words.reverse()
    swap = order in {"BADC", "DCBA"}
    out = bytearray()
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise DecodeError(f"register value {word} is not a 16-bit word")
        high, low = word >> 8, word & 0xFF
        out += bytes((low, high) if swap else (high, low))
    return bytes(out)


def _from_bytes(data: bytes, order: str) -> list[int]:
    swap = order in {"BADC", "DCBA"}
    words = [(data[i + 1] << 8 | data[i]) if swap else (data[i] << 8 | data[i + 1]) for i in range(0, len(data), 2)]
    if order in {"CDAB", "DCBA"}:
        words.reverse()
    return words


def decode_raw(registers: list[int], data_type: str, order: str = "ABCD") -> Value:
    """The raw value (before scale and offset) of a register-table field."""
    if data_type == "string":
        # Strings are a sequence of characters, not a number: words stay in address order and
        # only BADC/DCBA swap the two characters within each word.
        data = _to_bytes(registers, "BADC" if order in {"BADC", "DCBA"} else "ABCD")
        return data.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()
    expected = REGISTER_COUNT[data_type]
    if len(registers) != expected:
        raise DecodeError(f"{data_type} needs {expected} registers, got {len(registers)}")
    (value,) = struct.unpack(_STRUCT[data_type], _to_bytes(registers, order))
    return value  # type: ignore[no-any-return]


def encode_raw(value: Value, data_type: str, order: str = "ABCD", length: int | None = None) -> list[int]:
    """The registers that hold raw ``value``: the inverse of ``decode_raw``."""
    if data_type == "string":
        size = 2 * (length or 1)
        data = str(value).encode("utf-8")[:size].ljust(size, b"\x00")
        return _from_bytes(data, "BADC" if order in {"BADC", "DCBA"} else "ABCD")
    try:
        packed = struct.pack(_STRUCT[data_type], value)
    except struct.error:
        raise ValueError(f"{value!r} does not fit a {data_type}") from None
    return _from_bytes(packed, order)


def decode_field(field: RegisterField, data: Sequence[int] | Sequence[bool]) -> Value:
    """The physical value of ``field`` from its registers (or its one bit, for coils and discrete inputs):
    raw value × scale + offset (bits and strings are not scaled)."""
    if len(data) != field.count:
        raise DecodeError(f"{field.field}: needs {field.count} {_unit_of(field)}, got {len(data)}")
    if field.table in {"coil", "discrete"}:
        return bool(data[0])
    raw = decode_raw([int(word) for word in data], field.type, field.order)
    if isinstance(raw, str):
        return raw
    if field.scale == 1.0 and field.offset == 0.0 and field.type not in {"float32", "float64"}:
        return raw
    return float(raw) * field.scale + field.offset


# Where a numeric field's bytes come from and how struct reads them, by word/byte order: packing the block's
# words little-endian swaps the bytes of every word, and reading "<" reverses the field's bytes end to end,
# which (for a field of whole words) is the same as reversing its words and swapping their bytes.
_UNPACK_PLAN = {"ABCD": (">", ">"), "CDAB": ("<", "<"), "BADC": ("<", ">"), "DCBA": (">", "<")}


class BlockDecoder:
    """The fields of one block read, decoded from its response.

    Built once per block (a poll is the hot path): the block's words are packed into bytes once and every
    numeric field is one ``unpack_from``. Strings, and words that are not 16-bit values, take the
    field-by-field path of ``decode_field``, which says what is wrong.
    """

    def __init__(self, block: ReadBlock) -> None:
        self.block = block
        self._bits = block.table in {"coil", "discrete"}
        self._words = struct.Struct(f">{block.count}H"), struct.Struct(f"<{block.count}H")
        self._numeric: list[tuple[str, int, struct.Struct, bool, float, float, bool]] = []
        self._other: list[RegisterField] = []
        for field in block.fields:
            if self._bits or field.type == "string":
                self._other.append(field)
                continue
            packing, reading = _UNPACK_PLAN[field.order]
            is_float = field.type in {"float32", "float64"}
            scaled = is_float or field.scale != 1.0 or field.offset != 0.0
            self._numeric.append((
                field.field,
                2 * (field.address - block.address),
                struct.Struct(reading + _STRUCT[field.type][1]),
                packing == "<",
                field.scale,
                field.offset,
                scaled,
            ))  # fmt: skip

    def decode(self, data: Sequence[int] | Sequence[bool], on_garbage: Callable[[str], None]) -> dict[str, Value]:
        """The values of every field; a value that cannot be used (undecodable, NaN or infinite) is left
        out and described to ``on_garbage``."""
        if len(data) != self.block.count:
            on_garbage(f"block {self.block.table} {self.block.address}: {len(data)} values for {self.block.count}")
            return {}
        values: dict[str, Value] = {}
        if self._numeric:
            try:
                big = self._words[0].pack(*data)
                little = self._words[1].pack(*data)
            except struct.error:
                return self._decode_each(self.block.fields, data, on_garbage)
            for name, offset, unpacker, from_little, scale, shift, scaled in self._numeric:
                (raw,) = unpacker.unpack_from(little if from_little else big, offset)
                if not scaled:
                    values[name] = raw
                    continue
                value = float(raw) * scale + shift
                if math.isfinite(value):
                    values[name] = value
                else:
                    on_garbage(f"{name}: {value}")
        if self._other:
            values.update(self._decode_each(self._other, data, on_garbage))
        return values

    def _decode_each(
        self, fields: Sequence[RegisterField], data: Sequence[int] | Sequence[bool], on_garbage: Callable[[str], None]
    ) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for field in fields:
            try:
                value = decode_field(field, data[self.block.slice_of(field)])
            except DecodeError as error:
                on_garbage(f"{field.field}: {error}")
                continue
            if isinstance(value, float) and not math.isfinite(value):
                on_garbage(f"{field.field}: {value}")
                continue
            values[field.field] = value
        return values


def decode_block(
    block: ReadBlock, data: Sequence[int] | Sequence[bool], on_garbage: Callable[[str], None]
) -> dict[str, Value]:
    """``BlockDecoder(block).decode(data, on_garbage)``, for a block decoded once."""
    return BlockDecoder(block).decode(data, on_garbage)


def _unit_of(field: RegisterField) -> str:
    return "bit" if field.table in {"coil", "discrete"} else "registers"


def encode_field(field: RegisterField, value: float | int | str) -> list[int]:
    """Registers that make ``decode_field`` read ``value`` (rounded to what the type can hold)."""
    if field.type == "string":
        return encode_raw(str(value), "string", field.order, field.length)
    if isinstance(value, str):
        raise TypeError(f"{field.field}: a {field.type} field takes a number")
    raw = (value - field.offset) / field.scale
    if field.type in {"float32", "float64"}:
        return encode_raw(raw, field.type, field.order)
    if not math.isfinite(raw):
        raise ValueError(f"{field.field}: {value} cannot be held by a {field.type}")
    return encode_raw(round(raw), field.type, field.order)
