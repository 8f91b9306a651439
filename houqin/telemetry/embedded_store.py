"""The embedded telemetry store: readings in a SQLite file of their own, for the default set-up.

Raw values are kept ``embedded_raw_days``; hourly rollups (count, sum, min, max, first, last) are kept
``embedded_rollup_days`` and answer queries that reach further back, in whole-hour windows. The store
answers exactly what the InfluxDB store answers for the same readings: windows aligned the same way, the
same aggregates, the most recent point per device and measurement, a point written twice stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiosqlite
import orjson

from houqin.readings import FieldValue, GarbageLog, Reading
from houqin.settings import TelemetrySettings
from houqin.telemetry import local_days
from houqin.telemetry.line_protocol import EPOCH
from houqin.telemetry.model import (
    AHEAD,
    BoundaryQuery,
    LatestPoint,
    SeriesPoint,
    SeriesQuery,
    SeriesUnavailable,
    measurement_of,
)

log = logging.getLogger(__name__)

HOUR_US = 3_600_000_000
_US = timedelta(microseconds=1)

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    device TEXT NOT NULL,
    field TEXT NOT NULL,
    type TEXT NOT NULL,  -- number | bool | string
    UNIQUE (measurement, device, field)
);
CREATE TABLE IF NOT EXISTS raw (
    series INTEGER NOT NULL,
    ts INTEGER NOT NULL,  -- microseconds since the epoch
    value,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hourly (
    series INTEGER NOT NULL,
    hour INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL,
    min,
    max,
    first_ts INTEGER NOT NULL,
    first,
    last_ts INTEGER NOT NULL,
    last,
    PRIMARY KEY (series, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    measurement TEXT NOT NULL,
    device TEXT NOT NULL,
    ts INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, device)
);
"""

# Aggregates over raw values, and over hourly rollups; first/last use SQLite's rule that a bare column
# next to a single min() or max() comes from the row holding that min or max.
_RAW = {
    "mean": "avg(value)", "min": "min(value)", "max": "max(value)", "sum": "sum(value)",
    "count": "count(value)", "first": "value, min(ts)", "last": "value, max(ts)",
}  # fmt: skip
_ROLLUP = {
    "mean": "sum(sum) / sum(count)", "min": "min(min)", "max": "max(max)", "sum": "sum(sum)",
    "count": "sum(count)", "first": "first, min(first_ts)", "last": "last, max(last_ts)",
}  # fmt: skip

# ``series IN (...)``: a seek per series over the dirty hours, not a scan of every raw row.
_ROLLUP_SQL = """
WITH g AS (
    SELECT series, ts / :hour * :hour AS hour, count(value) AS c, sum(value) AS s, min(value) AS mn,
           max(value) AS mx, min(ts) AS fts, max(ts) AS lts
    FROM raw WHERE series IN (SELECT id FROM series) AND ts >= :start AND ts < :end GROUP BY series, hour
)
INSERT OR REPLACE INTO hourly (series, hour, count, sum, min, max, first_ts, first, last_ts, last)
SELECT g.series, g.hour, g.c, g.s, g.mn, g.mx,
       g.fts, (SELECT value FROM raw WHERE raw.series = g.series AND raw.ts = g.fts),
       g.lts, (SELECT value FROM raw WHERE raw.series = g.series AND raw.ts = g.lts)
FROM g
"""


def _us(ts: datetime) -> int:
    return (ts - EPOCH) // _US


def _from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


class EmbeddedStore:
    """A ``TelemetryStore`` in one SQLite file."""

    def __init__(
        self, path: Path, telemetry: TelemetrySettings, rollup_every: float = 60.0, timezone: ZoneInfo | None = None
    ) -> None:
        self.path = path
        self.settings = telemetry
        self.rollup_every = rollup_every
        self.timezone = timezone  # the site's: local days of the daily rollup (none without it)
        self.garbage = GarbageLog(log)
        self._db: aiosqlite.Connection | None = None
        self._series: dict[tuple[str, str, str], tuple[int, str]] = {}
        self._dirty: tuple[int, int] | None = None  # microseconds: raw rows written since the last rollup
        self._lock = asyncio.Lock()
        self._last_retention = -math.inf

    @property
    def name(self) -> str:
        return "telemetry:embedded"

    async def open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.executescript(SCHEMA + local_days.SCHEMA)
        async with self._db.execute("SELECT id, measurement, device, field, type FROM series") as cursor:
            async for series_id, measurement, device, field, kind in cursor:
                self._series[(measurement, device, field)] = (series_id, kind)
        await self._db.commit()
        # Raw rows a crash left without their rollup: from the last hour rolled up to the newest raw row.
        db, edge = self._db, local_days.edge
        rolled = await edge(db, "max", "hour", "hourly")
        oldest, newest = await edge(db, "min", "ts", "raw"), await edge(db, "max", "ts", "raw")
        if oldest is not None and newest is not None:
            self._dirty = (oldest if rolled is None else max(oldest, min(rolled, newest)), newest)
        if self.timezone is not None:
            await self._daily_for(self.timezone)

    async def close(self) -> None:
        if self._db is not None:
            await self.rollup()
            await self._db.close()
            self._db = None

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            await self.open()
        assert self._db is not None
        return self._db

    # -- writing ---------------------------------------------------------------------------------------

    async def consume(self, readings: Sequence[Reading]) -> None:
        db = await self._connection()
        async with self._lock:
            raw: list[tuple[int, int, FieldValue]] = []
            latest: dict[tuple[str, str], tuple[int, dict[str, FieldValue]]] = {}
            low, high = math.inf, -math.inf
            for reading in readings:
                measurement = measurement_of(reading)
                ts = _us(reading.ts)
                fields: dict[str, FieldValue] = {}
                for name, value in reading.fields.items():
                    if isinstance(value, float | int) and not isinstance(value, bool):
                        value = float(value)
                        if not math.isfinite(value):
                            self.garbage.report(reading.device, f"{name}: {value}")
                            continue
                    known = self._series.get((measurement, reading.device, name))
                    series_id = (
                        known[0] if known else await self._series_id(db, measurement, reading.device, name, value)
                    )
                    raw.append((series_id, ts, value))
                    fields[name] = value
                if not fields:
                    continue
                low, high = min(low, ts), max(high, ts)
                key = (measurement, reading.device)
                if key not in latest or ts >= latest[key][0]:
                    latest[key] = (ts, fields)
            if not raw:
                return
            await db.executemany("INSERT OR REPLACE INTO raw (series, ts, value) VALUES (?, ?, ?)", raw)
            await db.executemany(
                "INSERT INTO latest (measurement, device, ts, fields) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (measurement, device) DO UPDATE SET ts = excluded.ts, fields = excluded.fields "
                "WHERE excluded.ts >= latest.ts",
                [(m, d, ts, orjson.dumps(fields).decode()) for (m, d), (ts, fields) in latest.items()],
            )
            await db.commit()
            start, end = int(low), int(high)
            self._dirty = (
                (start, end) if self._dirty is None else (min(self._dirty[0], start), max(self._dirty[1], end))
            )

    async def _series_id(
        self, db: aiosqlite.Connection, measurement: str, device: str, field: str, value: FieldValue
    ) -> int:
        """A new series' id (the caller looked in the cache first)."""
        key = (measurement, device, field)
        kind = "bool" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"
        cursor = await db.execute(
            "INSERT INTO series (measurement, device, field, type) VALUES (?, ?, ?, ?)", (*key, kind)
        )
        series_id = int(cursor.lastrowid or 0)
        self._series[key] = (series_id, kind)
        return series_id

    async def run(self, stop: asyncio.Event) -> None:
        await self.open()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rollup_every)
                await self.rollup()
                if time.monotonic() - self._last_retention >= 3600:
                    await self.apply_retention()
        finally:
            await self.close()

    async def rollup(self) -> None:
        """Recompute the hourly rollups of every hour that got raw rows since the last rollup."""
        if self._dirty is None:
            return
        db = await self._connection()
        async with self._lock:
            low, high = self._dirty
            self._dirty = None
            start = low // HOUR_US * HOUR_US
            end = (high // HOUR_US + 1) * HOUR_US
            await db.execute(_ROLLUP_SQL, {"hour": HOUR_US, "start": start, "end": end})
            await self._roll_days(db, start, end)
            await db.commit()

    async def _roll_days(self, db: aiosqlite.Connection, start: int, end: int) -> None:
        if self.timezone is not None:
            await local_days.roll(db, start, end, self.timezone)

    async def _daily_for(self, timezone: ZoneInfo) -> None:
        """Build the daily rollup anew when it was kept for another timezone (or never)."""
        db = await self._connection()
        if await local_days.kept_for(db) == timezone.key:
            return
        async with self._lock:
            log.info("telemetry: building the daily rollup in %s from the hourly rollups", timezone.key)
            await local_days.rebuild(db, timezone)
            await db.commit()

    async def apply_retention(self, now: datetime | None = None) -> None:
        db = await self._connection()
        now = now or datetime.now(UTC)
        raw_horizon = _us(now - timedelta(days=self.settings.embedded_raw_days))
        rollup_horizon = _us(now - timedelta(days=self.settings.embedded_rollup_days))
        async with self._lock:
            await db.execute("DELETE FROM raw WHERE series IN (SELECT id FROM series) AND ts < ?", (raw_horizon,))
            await db.execute("DELETE FROM hourly WHERE series IN (SELECT id FROM series) AND hour < ?",
                             (rollup_horizon // HOUR_US * HOUR_US,))  # fmt: skip
            if self.timezone is not None:  # a day goes with its last hour
                day = (_from_us(rollup_horizon).astimezone(self.timezone).date()).toordinal()
                await db.execute("DELETE FROM daily WHERE series IN (SELECT id FROM series) AND day < ?", (day,))
            await db.commit()
        self._last_retention = time.monotonic()

    # -- reading ---------------------------------------------------------------------------------------

    async def latest(self, devices: Sequence[str] | None = None) -> list[LatestPoint]:
        db = await self._connection()
        horizon = _us(datetime.now(UTC) - timedelta(days=self.settings.latest_lookback_days))
        sql = "SELECT measurement, device, ts, fields FROM latest WHERE ts > ?"
        params: list[Any] = [horizon]
        if devices is not None:
            if not devices:
                return []
            sql += f" AND device IN ({','.join('?' * len(devices))})"
            params.extend(devices)
        async with db.execute(sql + " ORDER BY measurement, device", params) as cursor:
            rows = await cursor.fetchall()
        return [
            LatestPoint(measurement, device, _from_us(ts), orjson.loads(fields))
            for measurement, device, ts, fields in rows
        ]

    async def series(self, query: SeriesQuery) -> list[SeriesPoint]:
        db = await self._connection()
        known = self._series.get((query.measurement, query.device, query.field))
        if known is None:
            return []
        series_id, kind = known
        every, offset = query.every // _US, query.offset // _US
        start, end = _us(query.start), _us(query.end)
        raw_horizon = _us(datetime.now(UTC) - timedelta(days=self.settings.embedded_raw_days))
        if start >= raw_horizon:
            table, time_column, expression = "raw", "ts", _RAW[query.agg]
        elif every % HOUR_US == 0 and offset % HOUR_US == 0:
            table, time_column, expression = "hourly", "hour", _ROLLUP[query.agg]
            # An hour's rollup belongs to the query when its hour starts inside the range.
            start = -(-start // HOUR_US) * HOUR_US
        else:
            raise SeriesUnavailable(
                f"raw readings are kept {self.settings.embedded_raw_days} days; "
                "windows reaching further back must be whole hours"
            )
        sql = (
            f"SELECT ({time_column} - :offset) / :every * :every + :offset AS window, {expression} "  # noqa: S608
            f"FROM {table} WHERE series = :series AND {time_column} >= :start AND {time_column} < :end "
            "GROUP BY window ORDER BY window"
        )
        params = {"offset": offset, "every": every, "series": series_id, "start": start, "end": end}
        async with self._lock, db.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        points = []
        for row in rows:
            window, value = row[0], row[1]
            if value is None:
                continue
            if query.agg == "count":
                value = int(value)
            elif kind == "bool" and query.agg in {"first", "last"}:
                value = bool(value)
            elif kind != "string":
                value = float(value)
            points.append(SeriesPoint(_from_us(window), value))
        return points

    async def lasts(self, query: BoundaryQuery) -> dict[str, list[float | None]]:
        found: dict[str, list[float | None]] = {device: [None] * len(query.boundaries) for device in query.devices}
        devices = {}
        for device in query.devices:
            known = self._series.get((query.measurement, device, query.field))
            if known is not None:
                devices[known[0]] = device
        if not devices or not query.boundaries:
            return found
        raw_horizon = _us(datetime.now(UTC) - timedelta(days=self.settings.embedded_raw_days))
        edges = [_us(boundary) for boundary in query.boundaries]
        lows = [edges[0] - query.lookback // _US, *edges[:-1]]
        # The ids are integers from the series table, written into the statements, so that 10,000 devices
        # need no 10,000 parameters.
        ids = ",".join(f"({series_id})" for series_id in devices)
        db = await self._connection()
        # The daily rollup holds what was rolled up: days before the raw rows not rolled up yet.
        rolled = math.inf if self._dirty is None else self._dirty[0] // HOUR_US * HOUR_US
        zone = self.timezone
        windows = [local_days.window(low, high, zone) if zone is not None and high <= rolled else None
                   for low, high in zip(lows, edges, strict=True)]  # fmt: skip
        by_day = {index: days for index, days in enumerate(windows) if days is not None}
        scanned = bool(by_day) and sum(end - first for first, end in by_day.values()) <= 3 * len(by_day)
        if scanned:
            # Windows of a day or so (a month's days): one scan of the daily rows, not a seek per window.
            async with self._lock:
                async for series_id, index, value in local_days.scan(db, ids, by_day):
                    if type(value) is float:
                        found[devices[series_id]][index] = value
        ahead = _us(datetime.now(UTC) + AHEAD)
        for index, (low, high) in enumerate(zip(lows, edges, strict=True)):
            if (scanned and index in by_day) or low > ahead:
                continue
            # One index seek per device and window: the newest row before the window's end, if inside it.
            days = windows[index]
            if days is not None:
                low, high = days
                seek = "SELECT last FROM daily WHERE series = s.id AND day >= :low AND day < :high ORDER BY day DESC"
            elif low >= raw_horizon:
                seek = "SELECT value FROM raw WHERE series = s.id AND ts >= :low AND ts < :high ORDER BY ts DESC"
            elif high % HOUR_US == 0:
                low = -(-low // HOUR_US) * HOUR_US  # a rollup counts when its hour starts inside the window
                seek = (
                    "SELECT last FROM hourly WHERE series = s.id AND hour >= :low AND hour < :high ORDER BY hour DESC"
                )
            else:
                raise SeriesUnavailable(
                    f"raw readings are kept {self.settings.embedded_raw_days} days; "
                    "windows reaching further back must end on a whole hour"
                )
            # (Not filtered for NULL in SQL: SQLite would run the subquery twice per row.)
            sql = f"WITH s(id) AS (VALUES {ids}) SELECT s.id, ({seek} LIMIT 1) FROM s"  # noqa: S608 - integers only
            async with self._lock, db.execute(sql, {"low": low, "high": high}) as cursor:
                rows = await cursor.fetchall()
            for series_id, value in rows:
                if type(value) is float:  # numbers are stored as floats; a bool or a string is no counter
                    found[devices[series_id]][index] = value
        return found
