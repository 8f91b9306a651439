"""The embedded store's daily rollup: each series' last reading of every local day (the site's timezone).

A month's report over thousands of meters asks for every meter's last reading before each midnight. Asked
of the hourly rollups that is one index seek per meter and day in a table of a row per meter and hour
(10,000 meters over a year: 88 million rows, seconds of seeks); asked of this table — a narrow row per
meter and local day — it is a fraction of that. Days are local days because reports are: a day's row is
the last hourly rollup whose hour starts inside the local day. It is kept only where local midnights
fall on whole UTC hours (every zone but the few with a half- or quarter-hour offset); elsewhere the
store answers from the hourly rollups as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite

from houqin.telemetry.line_protocol import EPOCH

HOUR_US = 3_600_000_000
SCAN_CHUNK = 20_000
_US = timedelta(microseconds=1)

SCHEMA = """
CREATE TABLE IF NOT EXISTS daily (
    series INTEGER NOT NULL,
    day INTEGER NOT NULL,  -- the local date's ordinal (date.toordinal)
    last_ts INTEGER NOT NULL,
    last,
    PRIMARY KEY (series, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# One local day of every series from its hourly rollups (``last`` comes from the row holding the max).
# ``series IN (...)`` makes it a seek per series instead of a scan of every hourly row.
DAY_SQL = """
INSERT OR REPLACE INTO daily (series, day, last_ts, last)
SELECT series, :day, max(last_ts), last FROM hourly
WHERE series IN (SELECT id FROM series) AND hour >= :start AND hour < :end GROUP BY series
"""


def midnight_us(day: date, timezone: ZoneInfo) -> int:
    return (datetime.combine(day, time(), timezone).astimezone(UTC) - EPOCH) // _US


def local_days(start_us: int, end_us: int, timezone: ZoneInfo) -> Iterator[tuple[int, int, int]]:
    """(ordinal, start, end) in microseconds of every local day overlapping [start_us, end_us) whose
    midnights are whole UTC hours."""
    day = (EPOCH + timedelta(microseconds=start_us)).astimezone(timezone).date()
    last = (EPOCH + timedelta(microseconds=end_us - 1)).astimezone(timezone).date()
    while day <= last:
        start, end = midnight_us(day, timezone), midnight_us(day + timedelta(days=1), timezone)
        if start % HOUR_US == 0 and end % HOUR_US == 0:
            yield day.toordinal(), start, end
        day += timedelta(days=1)


def local_day(us: int, timezone: ZoneInfo) -> int | None:
    """The ordinal of the local day starting at ``us``; None if ``us`` is no local midnight on a whole
    UTC hour (the daily rollup cannot answer a window edge there)."""
    if us % HOUR_US:
        return None
    day = (EPOCH + timedelta(microseconds=us)).astimezone(timezone).date()
    return day.toordinal() if midnight_us(day, timezone) == us else None


def window(low: int, high: int, timezone: ZoneInfo) -> tuple[int, int] | None:
    """The window [low, high) as local days (first, end) of the daily rollup, if its edges are midnights."""
    first, end = local_day(low, timezone), local_day(high, timezone)
    return None if first is None or end is None else (first, end)


async def scan(
    db: aiosqlite.Connection, ids: str, windows: Mapping[int, tuple[int, int]]
) -> AsyncIterator[tuple[int, int, Any]]:
    """(series, window, value) of every daily row in the windows (days [first, end)), by one scan of the
    days they cover, in order: of a series' rows in one window, the last is its last reading there.
    ``ids``: the series as SQL ``VALUES`` rows."""
    window_of = {day: index for index, (first, end) in windows.items() for day in range(first, end)}
    sql = (
        f"WITH s(id) AS (VALUES {ids}) SELECT series, day, last FROM daily "  # noqa: S608 - integers only
        "WHERE series IN s AND day >= :first AND day < :end ORDER BY series, day"
    )
    async with db.execute(sql, {"first": min(window_of), "end": max(window_of) + 1}) as cursor:
        while rows := await cursor.fetchmany(SCAN_CHUNK):  # in chunks: rows die young, no full collections
            for series, day, value in rows:
                index = window_of.get(day)
                if index is not None:
                    yield series, index, value


async def roll(db: aiosqlite.Connection, start: int, end: int, timezone: ZoneInfo) -> None:
    """The daily rows of the local days holding the hours [start, end)."""
    for day, day_start, day_end in local_days(start, end, timezone):
        await db.execute(DAY_SQL, {"day": day, "start": day_start, "end": day_end})


async def edge(db: aiosqlite.Connection, extreme: str, column: str, table: str) -> int | None:
    """The min or max time in a table: a seek per series (over the whole table it would be a scan)."""
    sql = (
        f"SELECT {extreme}(t) FROM (SELECT (SELECT {extreme}({column}) FROM {table} "  # noqa: S608 - names from here
        "WHERE series = s.id) AS t FROM series s)"
    )
    async with db.execute(sql) as cursor:
        row = await cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def kept_for(db: aiosqlite.Connection) -> str | None:
    """The timezone the daily rollup was built in, if any."""
    async with db.execute("SELECT value FROM meta WHERE key = 'daily_timezone'") as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def rebuild(db: aiosqlite.Connection, timezone: ZoneInfo) -> None:
    """Every daily row from the hourly rollups, in ``timezone`` (the caller commits)."""
    first, last = await edge(db, "min", "hour", "hourly"), await edge(db, "max", "hour", "hourly")
    await db.execute("DELETE FROM daily")
    if first is not None and last is not None:
        await roll(db, first, last + HOUR_US, timezone)
    await db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('daily_timezone', ?)", (timezone.key,))
