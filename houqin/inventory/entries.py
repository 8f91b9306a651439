"""What every inventory entry shares: identifiers, value ranges, the base that forbids unknown keys."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict


def _between(low: float, high: float) -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    return AfterValidator(check)


_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def _identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(
            f"must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit, got {value!r}"
        )
    return value


Ident = Annotated[str, AfterValidator(_identifier)]


def _device_member(value: str) -> str:
    """``device`` or ``device:command`` (one output of a multi-channel device)."""
    device, _, command = value.partition(":")
    _identifier(device)
    if command:
        _identifier(command)
    return value


UnitId = Annotated[int, _between(1, 247)]
Address = Annotated[int, _between(0, 65535)]
Port = Annotated[int, _between(1, 65535)]
Seconds = Annotated[float, _between(0.001, 86400)]

DeviceKind = Literal["electricity", "water", "heat", "gas", "lighting", "broadcast"]
RegisterTable = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]

# Registers a value occupies; strings say their own length.
REGISTER_COUNT: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
    "int64": 4, "uint64": 4, "float64": 4,
}  # fmt: skip


TOPIC_PLACEHOLDER = re.compile(r"\{(\w*)\}")
TOPIC_FIELDS = ("device", "building", "floor", "room")


class Entry(BaseModel):
    """Base of every inventory entry: unknown keys are mistakes (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
