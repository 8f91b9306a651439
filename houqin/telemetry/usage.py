"""Energy used per hour of a day or per day of a month, from a meter's cumulative energy register.

The energy used in a window is the meter's last reading before the window's end minus its last reading
before the window's start, so the kWh between two polls that straddle midnight are counted in the day
they were used up to, and the windows add up to the meter's advance. The hourly "last" values come from
the telemetry store, so both stores give the same answer. A register that goes down (meter replaced or
reset) counts nothing for that window rather than a negative amount.

A window with no reading before it but some inside it (a meter read for the first time, the demo at its
first start) counts from its first reading and says so (``partial``): the windows still add up to the
meter's advance since it was first read.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from houqin.telemetry.model import SeriesQuery, TelemetryStore

Period = Literal["day", "month"]
ENERGY_FIELD = "energy"
HOUR = timedelta(hours=1)
LOOKBACK = timedelta(days=2)  # how far before a window the last reading is looked for


@dataclass(frozen=True)
class UsageWindow:
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
    now = now or datetime.now(UTC)
    # Hour windows aligned to the boundaries (a zone at UTC+5:30 has local hours on the half hour).
    offset = timedelta(seconds=boundaries[0].timestamp() % 3600)
    end = min(boundaries[-1], now + HOUR)
    lasts = await store.series(
        SeriesQuery(measurement, meter, field, boundaries[0] - LOOKBACK, end, HOUR, "last", offset)
    )
    index = 0
    previous: float | None = None
    # The last reading before each boundary. Hours and boundaries are aligned, so every hour that
    # starts before a boundary ends at or before it.
    readings_before: list[float | None] = []
    for boundary in boundaries:
        while index < len(lasts) and lasts[index].start < boundary:
            previous = float(lasts[index].value)
            index += 1
        readings_before.append(previous)
    windows = []
    firsts: list[tuple[datetime, float]] | None = None
    hours = [point.start for point in lasts]
    for (start, stop), (before, after) in zip(
        itertools.pairwise(boundaries), itertools.pairwise(readings_before), strict=True
    ):
        read = bisect.bisect_left(hours, start) < bisect.bisect_left(hours, stop)
        if start > now or after is None:
            windows.append(UsageWindow(start, stop, None, read=read))
        elif before is not None:
            windows.append(UsageWindow(start, stop, max(0.0, after - before), read=read))
        else:
            if firsts is None:  # asked only when a window starts without a reading before it
                query = SeriesQuery(measurement, meter, field, boundaries[0], end, HOUR, "first", offset)
                firsts = [(point.start, float(point.value)) for point in await store.series(query)]
            first = next((value for hour, value in firsts if start <= hour < stop), None)
            kwh = None if first is None else max(0.0, after - first)
            windows.append(UsageWindow(start, stop, kwh, partial=first is not None))
    return windows
