"""Readings: what a device reported at one moment, and the interface of everything that consumes them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from prometheus_client import Counter

FieldValue = float | int | bool | str


def as_number(value: FieldValue | None) -> float | None:
    """A field's value as a number, or None when it is missing, a flag or text (a bool is an int to Python)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, slots=True)
class Reading:
    """One device's fields, all stamped with the same time (timezone-aware, UTC)."""

    device: str
    ts: datetime
    fields: Mapping[str, FieldValue]
    tags: Mapping[str, str] = field(default_factory=dict)

    def number(self, name: str) -> float | None:
        """Field ``name`` as a number (None when missing or not a number)."""
        return as_number(self.fields.get(name))

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError(f"reading of {self.device}: timestamp must be timezone-aware")


# How a collector hands a reading on, and how it waits until what it handed on is stored durably (when
# readings must survive a crash; see ``Pipeline.settled``).
Publish = Callable[[Reading], Awaitable[None]]
Settled = Callable[[], Awaitable[bool]]


class ReadingSink(Protocol):
    """A consumer of readings (telemetry store, rules engine, billing). The pipeline owns batching and
    queues; a sink only consumes what it is handed, in order."""

    @property
    def name(self) -> str: ...

    async def consume(self, readings: Sequence[Reading]) -> None: ...


@runtime_checkable
class GatheringSink(ReadingSink, Protocol):
    """A sink whose cost is per batch more than per reading (a database transaction): it asks the pipeline
    to gather its readings for ``gather_s`` seconds after the first of a batch, instead of the pipeline's
    few milliseconds. Without it a process's batches shrink as its load does, and two processes each
    reading half a campus ran twice the transactions of one reading all of it."""

    gather_s: float


DEVICE_GARBAGE = Counter(
    "houqin_device_garbage_total", "Values or payloads from devices that could not be used", ["device"]
)


class GarbageLog:
    """Counts unusable device data always, logs it once per device per minute: a babbling device must
    neither flood the log nor go unnoticed."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self.logger = logger
        self.every = every
        self.count = 0
        self._last: dict[str, float] = {}

    def report(self, device: str, what: str) -> None:
        self.count += 1
        DEVICE_GARBAGE.labels(device).inc()
        now = time.monotonic()
        if now - self._last.get(device, -math.inf) >= self.every:
            self._last[device] = now
            self.logger.warning("%s sent data houqin cannot use (%s); counted and skipped", device, what)
