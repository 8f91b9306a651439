"""Energy used per hour of a day or per day of a month, from a meter's cumulative energy register.

The energy used in a window is the meter's last reading before the window's end minus its last reading
before the window's start, so the kWh between two polls that straddle midnight are counted in the day
they were used up to, and the windows add up to the meter's advance. The last reading in each window
comes from the telemetry store (``lasts``: one query for any number of meters), so both stores give the
same answer. A register that goes down (meter replaced or
reset) counts nothing for that window rather than a negative amount.

A window with no reading before it but some inside it (a meter read for the first time, the demo at its
first start) counts from its first reading and says so (``partial``): the windows still add up to the
meter's advance since it was first read.
"""

from __future__ import annotations

import asyncio
import bisect
import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from houqin.telemetry.model import BoundaryQuery, SeriesQuery, TelemetryStore

Period = Literal["day", "month"]
ENERGY_FIELD = "energy"
HOUR = timedelta(hours=1)
LOOKBACK = timedelta(days=2)  # how far before a window the last reading is looked for
CONCURRENT_FIRSTS = 16  # queries in flight for meters read for the first time inside a period


class UsageWindow(NamedTuple):
    """A meter's use in one window. A tuple: a campus report makes hundreds of thousands of them."""

    start: datetime
    end: datetime
    kwh: float | None  # None: no reading to measure from (the meter was silent, or the window is ahead)
    partial: bool = False  # counted from the first reading inside the window: none came before it
    read: bool = True  # the meter was read inside the window (else its advance shows where it is read again)


def usage_boundaries(period: Period, day: date, timezone: ZoneInfo) -> list[datetime]:
    """Window edges in UTC: every local hour of ``day``, or every local midnight of ``day``'s month."""
    if period == "day":
        start = datetime.combine(day, time(), timezone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(), timezone).astimezone(UTC)
        hours = int((end - start) / HOUR)  # 23 or 25 on a daylight-saving change
        return [start + k * HOUR for k in range(hours + 1)]
    days = calendar.monthrange(day.year, day.month)[1]
    first = day.replace(day=1)
    return [datetime.combine(first + timedelta(days=k), time(), timezone).astimezone(UTC) for k in range(days + 1)]


async def energy_usage(
    store: TelemetryStore,
    meter: str,
    boundaries: list[datetime],
    now: datetime | None = None,
    field: str = ENERGY_FIELD,
    measurement: str = "electricity",
) -> list[UsageWindow]:
    """kWh used between consecutive ``boundaries`` by ``meter`` (an electricity device; or the advance of
    another cumulative ``field``, such as a water meter's total)."""
    return (await energy_usages(store, [meter], boundaries, now, field, measurement))[meter].windows()


@dataclass(frozen=True, slots=True)
class Usage:
    """A meter's use in each window between ``boundaries``, as columns: a campus report holds hundreds of
    thousands of windows, and a column of floats costs the garbage collector nothing."""

    boundaries: list[datetime]
    kwh: list[float | None]  # None: no reading to measure from (the meter was silent, or the window is ahead)
    read: list[bool]  # the meter was read inside the window (else its advance shows where it is read again)
    partial: list[bool]  # counted from the first reading inside the window: none came before it

    def windows(self) -> list[UsageWindow]:
        edges = self.boundaries
        return [UsageWindow(edges[k], edges[k + 1], kwh, self.partial[k], self.read[k])
                for k, kwh in enumerate(self.kwh)]  # fmt: skip


async def energy_usages(
    store: TelemetryStore,
    meters: Sequence[str],
    boundaries: list[datetime],
    now: datetime | None = None,
    field: str = ENERGY_FIELD,
    measurement: str = "electricity",
) -> dict[str, Usage]:
    """``energy_usage`` of many meters of one measurement, in one query of the store."""
    now = now or datetime.now(UTC)
    lasts = await store.lasts(BoundaryQuery(measurement, field, meters, boundaries, LOOKBACK))
    started = bisect.bisect_right(boundaries, now, hi=len(boundaries) - 1)  # windows that have begun
    usages: dict[str, Usage] = {}
    unread: list[tuple[str, int]] = []  # windows of meters first read inside the period
    for meter, found in lasts.items():
        usage = usages[meter] = _usage(boundaries, found, started)
        unread.extend((meter, index) for index in range(started) if usage.partial[index])
    if unread:  # their use counts from the first reading inside the window
        limit = asyncio.Semaphore(CONCURRENT_FIRSTS)

        async def first_reading(meter: str, index: int) -> None:
            start, stop = boundaries[index], boundaries[index + 1]
            # Hour windows aligned to the boundaries (a zone at UTC+5:30 has local hours on the half hour).
            offset = timedelta(seconds=start.timestamp() % 3600)
            query = SeriesQuery(measurement, meter, field, start, stop, HOUR, "first", offset)
            async with limit:
                firsts = await store.series(query)
            after = lasts[meter][index + 1]
            usage = usages[meter]
            usage.partial[index] = bool(firsts)
            if firsts and after is not None:
                usage.kwh[index] = max(0.0, after - float(firsts[0].value))

        await asyncio.gather(*(first_reading(meter, index) for meter, index in unread))
    return usages


def _usage(boundaries: list[datetime], found: list[float | None], started: int) -> Usage:
    """The windows between ``boundaries`` from the last reading in each; the first ``started`` have begun.
    A window read for the first time is marked partial, its use still to be counted from its first
    reading."""
    count = len(boundaries) - 1
    kwh: list[float | None] = [None] * count
    read = [value is not None for value in found[1:]]
    partial = [False] * count
    before = found[0]  # the last reading before the window
    for index in range(count):
        value = found[index + 1]
        after = before if value is None else value
        if index < started and after is not None:
            if before is not None:
                kwh[index] = after - before if after > before else 0.0
            else:
                partial[index] = True
        before = after
    return Usage(boundaries, kwh, read, partial)
