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
import calendar
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, NamedTuple, cast
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
    return (await energy_usages(store, [meter], boundaries, now, field, measurement))[meter]


async def energy_usages(
    store: TelemetryStore,
    meters: Sequence[str],
    boundaries: list[datetime],
    now: datetime | None = None,
    field: str = ENERGY_FIELD,
    measurement: str = "electricity",
) -> dict[str, list[UsageWindow]]:
    """``energy_usage`` of many meters of one measurement, in one query of the store."""
    now = now or datetime.now(UTC)
    lasts = await store.lasts(BoundaryQuery(measurement, field, meters, boundaries, LOOKBACK))
    usages = {meter: _windows(boundaries, found, now) for meter, found in lasts.items()}
    unread = [meter for meter, windows in usages.items() if any(window is None for window in windows)]
    if unread:  # meters first read inside the period: their first window counts from the first reading
        limit = asyncio.Semaphore(CONCURRENT_FIRSTS)

        async def first_readings(meter: str) -> None:
            # Hour windows aligned to the boundaries (a zone at UTC+5:30 has local hours on the half hour).
            offset = timedelta(seconds=boundaries[0].timestamp() % 3600)
            query = SeriesQuery(measurement, meter, field, boundaries[0], boundaries[-1], HOUR, "first", offset)
            async with limit:
                firsts = [(point.start, float(point.value)) for point in await store.series(query)]
            windows = usages[meter]
            for index, window in enumerate(windows):
                if window is None:
                    start, stop = boundaries[index], boundaries[index + 1]
                    first = next((value for hour, value in firsts if start <= hour < stop), None)
                    after = lasts[meter][index + 1]
                    kwh = None if first is None or after is None else max(0.0, after - first)
                    windows[index] = UsageWindow(start, stop, kwh, partial=first is not None)

        await asyncio.gather(*(first_readings(meter) for meter in unread))
    return cast(dict[str, list[UsageWindow]], usages)  # every None was a meter read first in the period: filled


def _windows(boundaries: list[datetime], found: list[float | None], now: datetime) -> list[UsageWindow | None]:
    """The windows between ``boundaries`` from the last reading in each (``None``: a window read for the
    first time, whose use counts from its first reading)."""
    windows: list[UsageWindow | None] = []
    before = found[0]  # the last reading before the window
    for index in range(len(boundaries) - 1):
        start, stop, value = boundaries[index], boundaries[index + 1], found[index + 1]
        after, read = (before, False) if value is None else (value, True)
        if start > now or after is None:
            windows.append(UsageWindow(start, stop, None, False, read))
        elif before is not None:
            windows.append(UsageWindow(start, stop, after - before if after > before else 0.0, False, read))
        else:
            windows.append(None)
        before = after
    return windows
