"""The telemetry store's interface: what every implementation writes and answers, and in which terms."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from houqin.readings import FieldValue, Reading

# One measurement per kind of device, plus the poller's own health readings.
MEASUREMENTS = ("electricity", "water", "lighting", "broadcast", "device_health")

Aggregate = Literal["mean", "min", "max", "sum", "count", "first", "last"]
AGGREGATES: tuple[Aggregate, ...] = ("mean", "min", "max", "sum", "count", "first", "last")
# Aggregates that make sense for a field that is not a number (a relay state, a program name).
SELECTORS: tuple[Aggregate, ...] = ("count", "first", "last")


def measurement_of(reading: Reading) -> str:
    """The measurement a reading is stored in: its kind tag (every reading from the collectors has one)."""
    return reading.tags.get("kind", "")


class SeriesUnavailable(ValueError):  # noqa: N818 - reads as a state
    """The store cannot answer this query as asked (e.g. fine windows older than the raw readings kept)."""


@dataclass(frozen=True)
class SeriesQuery:
    """One field of one device, aggregated per window of ``every``; windows start at whole multiples of
    ``every`` since the epoch, shifted by ``offset`` (InfluxQL's ``GROUP BY time(every, offset)``)."""

    measurement: str
    device: str
    field: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    every: timedelta
    agg: Aggregate = "mean"
    offset: timedelta = timedelta(0)


# A window of ``lasts`` starting later than this from now has no readings to look for (not asked).
AHEAD = timedelta(hours=1)


@dataclass(frozen=True)
class BoundaryQuery:
    """For each of ``devices``, the last value of ``field`` before each of ``boundaries``, looked for since
    the boundary before it (before the first: since ``lookback`` before it). What a report over many meters
    asks in one query: the counters at the edges of its windows."""

    measurement: str
    field: str
    devices: Sequence[str]
    boundaries: Sequence[datetime]  # ascending
    lookback: timedelta


@dataclass(frozen=True)
class SeriesPoint:
    start: datetime  # the window's start
    value: FieldValue


@dataclass(frozen=True)
class LatestPoint:
    """The most recent point of a device in one measurement."""

    measurement: str
    device: str
    ts: datetime
    fields: Mapping[str, FieldValue]


class TelemetryStore(Protocol):
    """Keeps readings and answers the questions the API and the dashboards ask. A ``ReadingSink`` of the
    pipeline and a ``Component`` of ``houqin run`` (its ``run`` writes in the background)."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None:
        """Background work (batched writes, replay, retention) until ``stop``; flushes what it holds."""
        ...

    async def consume(self, readings: Sequence[Reading]) -> None: ...

    async def latest(self, devices: Sequence[str] | None = None) -> list[LatestPoint]:
        """The latest point per device and measurement (of the given devices, or of all)."""
        ...

    async def series(self, query: SeriesQuery) -> list[SeriesPoint]:
        """Windows with no data are left out."""
        ...

    async def lasts(self, query: BoundaryQuery) -> dict[str, list[float | None]]:
        """Per device of the query, per boundary: the last number read in the window that ends there, or
        ``None`` when nothing was read in it (a device with no readings at all: every entry ``None``)."""
        ...
