"""Readings: what a device reported at one moment, and the interface of everything that consumes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

FieldValue = float | int | bool | str


@dataclass(frozen=True, slots=True)
class Reading:
    """One device's fields, all stamped with the same time (timezone-aware, UTC)."""

    device: str
    ts: datetime
    fields: Mapping[str, FieldValue]
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError(f"reading of {self.device}: timestamp must be timezone-aware")


class ReadingSink(Protocol):
    """A consumer of readings (telemetry store, rules engine, billing). The pipeline owns batching and
    queues; a sink only consumes what it is handed, in order."""

    name: str

    async def consume(self, readings: Sequence[Reading]) -> None: ...
