"""The embedded store answers what InfluxDB answers: the same readings into both, the same questions,
the same results (latest points, every aggregate over several windows, energy per hour, and from the
embedded store's hourly rollups once its raw readings have expired)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from houqin.readings import Reading
from houqin.settings import InfluxSettings, TelemetrySettings
from houqin.telemetry import AGGREGATES, SeriesQuery, SeriesUnavailable
from houqin.telemetry.embedded_store import EmbeddedStore
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.model import BoundaryQuery
from houqin.telemetry.spool import Spool
from houqin.telemetry.usage import energy_usage, usage_boundaries
from tests.servers import Influxd

TZ = ZoneInfo("Asia/Shanghai")
SETTINGS = TelemetrySettings(batch_points=500, flush_seconds=0.05, embedded_raw_days=35)


def campus_readings(start: datetime, hours: int, seed: int) -> list[Reading]:
    rng = random.Random(seed)
    readings = []
    for device in ("m1", "m2"):
        energy = 100.0 * int(device[1])
        tags = {"kind": "electricity", "device": device, "building": "B1", "room": f"R{device}"}
        for step in range(hours * 120):  # every 30 s
            ts = start + timedelta(seconds=30 * step + rng.randint(0, 3))
            power = rng.uniform(50, 2000)
            energy += power * 30 / 3.6e6
            fields = {"power": power, "energy": energy, "relay_closed": rng.random() > 0.2,
                      "state": rng.choice(["normal", "low"])}  # fmt: skip
            readings.append(Reading(device, ts, fields, tags))
            if step % 40 == 0:
                health = {"online": True, "consecutive_failures": 0, "poll_latency_ms": rng.uniform(5, 50)}
                readings.append(
                    Reading(device, ts, health, {**tags, "kind": "device_health", "device_kind": "electricity"})
                )
    return readings


async def fill(
    influxd: Influxd, tmp_path: Path, database: str, readings: list[Reading]
) -> tuple[InfluxStore, EmbeddedStore]:
    influx = InfluxStore(
        InfluxSettings(url=influxd.url, api="v1", database=database), SETTINGS, Spool(tmp_path / "spool", 1 << 30)
    )
    embedded = EmbeddedStore(tmp_path / "telemetry.sqlite3", SETTINGS)
    stop = asyncio.Event()
    task = asyncio.create_task(influx.run(stop))
    await influx.consume(readings)
    await embedded.consume(readings)
    await embedded.consume(readings[:100])  # written twice: stored once, in both
    await influx.consume(readings[:100])
    stop.set()
    await task
    assert influx.written_points == len(readings) + 100 and len(influx.spool) == 0
    await embedded.rollup()
    return influx, embedded


def same(a: list, b: list) -> None:  # type: ignore[type-arg]
    assert [p.start for p in a] == [p.start for p in b]
    for x, y in zip(a, b, strict=True):
        if isinstance(x.value, float):
            assert x.value == pytest.approx(y.value, rel=1e-9), (x, y)
        else:
            assert x.value == y.value and type(x.value) is type(y.value), (x, y)


async def test_same_answers_from_both_stores(influxd: Influxd, tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)
    influx, embedded = await fill(influxd, tmp_path, "parity", campus_readings(start, 24, seed=7))
    try:
        latest_influx = sorted(await influx.latest(), key=lambda p: (p.measurement, p.device))
        latest_embedded = sorted(await embedded.latest(), key=lambda p: (p.measurement, p.device))
        assert latest_influx == latest_embedded and len(latest_influx) == 4
        assert await influx.latest(["m2"]) == [p for p in latest_influx if p.device == "m2"]
        windows = [timedelta(minutes=1), timedelta(minutes=7), timedelta(hours=1)]
        for every in windows:
            for agg in AGGREGATES:
                query = SeriesQuery("electricity", "m1", "power", start + timedelta(minutes=13),
                                    start + timedelta(hours=20), every, agg)  # fmt: skip
                same(await influx.series(query), await embedded.series(query))
        for field in ("relay_closed", "state"):
            for agg in ("first", "last", "count"):
                query = SeriesQuery("electricity", "m2", field, start, start + timedelta(hours=6),
                                    timedelta(minutes=30), agg)  # type: ignore[arg-type]  # fmt: skip
                same(await influx.series(query), await embedded.series(query))
        health = SeriesQuery("device_health", "m1", "poll_latency_ms", start, start + timedelta(days=1),
                             timedelta(hours=2), "max")  # fmt: skip
        same(await influx.series(health), await embedded.series(health))
        day = (start + timedelta(hours=12)).astimezone(TZ).date()
        boundaries = usage_boundaries("day", day, TZ)
        from_influx = await energy_usage(influx, "m1", boundaries)
        from_embedded = await energy_usage(embedded, "m1", boundaries)
        assert [w.kwh for w in from_influx] == pytest.approx([w.kwh for w in from_embedded])
        assert [w.partial for w in from_influx] == [w.partial for w in from_embedded]
        assert len(from_influx) == 24 and sum(w.kwh or 0 for w in from_influx) > 0
    finally:
        await embedded.close()


async def test_rollups_answer_like_influxdb_once_raw_readings_expire(influxd: Influxd, tmp_path: Path) -> None:
    start = (datetime.now(UTC) - timedelta(days=60)).replace(minute=0, second=0, microsecond=0)
    influx, embedded = await fill(influxd, tmp_path, "rollups", campus_readings(start, 30, seed=11))
    try:
        await embedded.apply_retention()
        for agg in AGGREGATES:
            for every in (timedelta(hours=1), timedelta(hours=6)):
                query = SeriesQuery("electricity", "m2", "energy", start, start + timedelta(hours=30), every, agg)
                same(await influx.series(query), await embedded.series(query))
        month = usage_boundaries("month", (start + timedelta(days=1)).astimezone(TZ).date(), TZ)
        kwh = [w.kwh for w in await energy_usage(influx, "m2", month)]
        assert kwh == pytest.approx([w.kwh for w in await energy_usage(embedded, "m2", month)])
        fine = SeriesQuery("electricity", "m2", "power", start, start + timedelta(hours=2), timedelta(minutes=5))
        with pytest.raises(SeriesUnavailable, match="kept 35 days"):
            await embedded.series(fine)
    finally:
        await embedded.close()


def test_usage_windows_follow_local_days() -> None:
    hours = usage_boundaries("day", date(2026, 3, 8), ZoneInfo("America/New_York"))  # clocks go forward
    assert len(hours) == 24  # 23 hours, 24 edges
    month = usage_boundaries("month", date(2026, 2, 14), TZ)
    assert len(month) == 29 and month[0] == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)


async def test_last_readings_of_many_meters_at_window_edges(influxd: Influxd, tmp_path: Path) -> None:
    """``lasts`` (what a campus report asks: every meter's last reading in each window) gives what the
    readings say, from both stores, for more meters than are named in an InfluxDB query, with silent hours,
    a silent meter, a meter never read, and windows both in the raw readings and in the hourly rollups."""
    rng = random.Random(5)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    spans = [now - timedelta(days=40), now - timedelta(days=3)]  # rollups only, raw readings
    devices = [f"m{k:03}" for k in range(90)]
    readings = []
    for device in devices[:-1]:  # the last is never read
        for span in spans:
            energy = rng.uniform(0, 1000)
            for minutes in range(0, 48 * 60, 20):
                if (device == devices[-2] and minutes > 6 * 60) or rng.random() < 0.15:
                    continue  # a meter silent after six hours; silent polls everywhere
                energy += rng.uniform(0, 0.5)
                ts = span + timedelta(minutes=minutes, seconds=rng.randint(0, 59))
                readings.append(Reading(device, ts, {"energy": energy}, {"kind": "electricity", "device": device}))
    influx, embedded = await fill(influxd, tmp_path, "lasts", readings)
    try:
        await embedded.apply_retention()
        for span in spans:
            boundaries = [span + timedelta(hours=h) for h in (2, 3, 9, 10, 20, 44, 47)]
            query = BoundaryQuery("electricity", "energy", devices, boundaries, timedelta(hours=1))
            expected = oracle(query, readings)
            assert await embedded.lasts(query) == expected
            assert await influx.lasts(query) == expected
            few = BoundaryQuery("electricity", "energy", devices[-3:], boundaries, timedelta(hours=1))
            assert await influx.lasts(few) == await embedded.lasts(few) == {d: expected[d] for d in devices[-3:]}
            assert sum(v is None for v in expected[devices[-2]]) == 4 and set(expected[devices[-1]]) == {None}
        old = BoundaryQuery("electricity", "energy", devices, [spans[0] + timedelta(minutes=90)], timedelta(hours=1))
        with pytest.raises(SeriesUnavailable, match="whole hour"):
            await embedded.lasts(old)
        await embedded.close()
        # With the site's timezone the store keeps a daily rollup (built at open from the hourly rollups):
        # windows between local midnights come from it, scanned (days) or sought (a week), and say the same.
        embedded = EmbeddedStore(tmp_path / "telemetry.sqlite3", SETTINGS, timezone=TZ)
        await embedded.open()
        for span in spans:
            midnight = datetime.combine(span.astimezone(TZ).date() + timedelta(days=1), time(), TZ).astimezone(UTC)
            day = timedelta(days=1)
            cases = [([midnight, midnight + day], day),  # days: the daily rows scanned
                     ([midnight + timedelta(hours=5), midnight + day], timedelta(hours=5)),  # not midnights
                     ([midnight + day, midnight + 8 * day], 2 * day)]  # a week: a seek per window  # fmt: skip
            for edges, lookback in cases:
                query = BoundaryQuery("electricity", "energy", devices, edges, lookback)
                assert await embedded.lasts(query) == await influx.lasts(query) == oracle(query, readings)
    finally:
        await embedded.close()


def oracle(query: BoundaryQuery, readings: list[Reading]) -> dict[str, list[float | None]]:
    """What ``lasts`` must answer, from the readings themselves."""
    found: dict[str, list[float | None]] = {device: [None] * len(query.boundaries) for device in query.devices}
    lows = [query.boundaries[0] - query.lookback, *query.boundaries[:-1]]
    for reading in sorted(readings, key=lambda r: r.ts):
        for index, (low, high) in enumerate(zip(lows, query.boundaries, strict=True)):
            if low <= reading.ts < high and reading.device in found:
                found[reading.device][index] = float(reading.fields["energy"])  # type: ignore[arg-type]
    return found
