"""Energy reports: a month's campus report by building and sub-item over 10,000 meters and a year of
hourly readings (about 88 million points), from the embedded store and from influxd holding the same
points; and how long the demo campus's first start takes to make its history.

The campus: 100 buildings, each with an electricity main meter over 89 sub-meters of the four sub-items
and a water main meter over 9 sub-meters. Every meter is read once an hour (a reading in a thousand is
missing, counted as a gap by the report) for ``--days`` days up to now. The embedded store holds them as
its retention leaves them: hourly rollups for the year, raw readings for the last ``embedded_raw_days``.
influxd gets the very points the embedded store holds, as line protocol. Loading is not timed.

Figures (the median of three runs of each report):
- ``month_report_s``: the embedded store's report of a whole month from the hourly rollups (goal ≤ 2 s);
- ``embedded_vs_influx``: that time ÷ influxd's time for the same report (goal ≤ 2); both reports agree;
- ``raw_month_report_s``: the current month so far, from the embedded store's raw readings;
- ``history_fill_s``: the demo campus's 60 days of history at its first start (goal ≤ 30 s), and
  ``demo_month_report_s``, a month's report of the demo campus.

    .venv/bin/python bench/energy_report.py [--meters 10000] [--days 365] [--history-days 60] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from queue import Queue
from zoneinfo import ZoneInfo

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assembly.cli.demo_history import demo_history  # noqa: E402
from houqin.energy.report import EnergyReport, energy_report  # noqa: E402
from houqin.inventory import Inventory, load_inventory  # noqa: E402
from houqin.inventory.energy import CUMULATIVE_FIELD  # noqa: E402
from houqin.settings import InfluxSettings, Settings, TelemetrySettings  # noqa: E402
from houqin.telemetry.embedded_store import SCHEMA, EmbeddedStore  # noqa: E402
from houqin.telemetry.influx_store import InfluxStore  # noqa: E402
from houqin.telemetry.spool import Spool  # noqa: E402
from tests.servers import Influxd, influxd_server  # noqa: E402

PER_BUILDING = 100  # an electricity main meter, 89 sub-meters; a water main meter, 9 sub-meters
SUB_ITEMS = ["01A00"] * 60 + ["01B00"] * 20 + ["01C00"] * 5 + ["01D00"] * 4
HOUR_US = 3_600_000_000
# The share of a day's use up to the end of each local hour: little at night, most in the day.
WEIGHTS = [0.4] * 7 + [1.2] * 4 + [1.6] * 3 + [1.2] * 4 + [1.5] * 4 + [0.6] * 2
POINTS_PER_WRITE = 50_000
INFLUX_DATA = """  cache-max-memory-size = "8g"
  cache-snapshot-memory-size = "256m"
  max-series-per-database = 0"""


def campus_text(meters: int) -> str:
    """devices.yaml of ``meters`` meters in buildings of a hundred."""
    buildings = meters // PER_BUILDING
    lines = ["site: {name: Energy bench campus, timezone: Asia/Shanghai}", "gateways:"]
    lines += [f"  - {{id: gw{b}, type: modbus_tcp, host: 127.0.0.1, port: {20000 + b}}}" for b in range(buildings)]
    lines.append("devices:")
    for b in range(buildings):
        main = f"b{b:03d}-main"
        lines.append(f"  - {{id: {main}, model: eastron-sdm630, gateway: gw{b}, unit: 1, building: b{b:03d}, "
                     "energy_code: '01000'}")  # fmt: skip
        for n, code in enumerate(SUB_ITEMS):
            lines.append(f"  - {{id: b{b:03d}-e{n:02d}, model: eastron-sdm120, gateway: gw{b}, unit: {n + 2}, "
                         f"building: b{b:03d}, energy_code: {code}, parent: {main}}}")  # fmt: skip
        water = f"b{b:03d}-water"
        lines.append(f"  - {{id: {water}, model: mqtt-water-meter, topic: campus/{water}, building: b{b:03d}}}")
        for n in range(PER_BUILDING - 2 - len(SUB_ITEMS)):
            device = f"b{b:03d}-w{n}"
            lines.append(f"  - {{id: {device}, model: mqtt-water-meter, topic: campus/b{b:03d}/{device}, "
                         f"building: b{b:03d}, parent: {water}}}")  # fmt: skip
    lines.append("buildings:")
    lines += [f"  - {{id: b{b:03d}, floor_area_m2: {4000 + 50 * b}, occupants: {200 + b}}}" for b in range(buildings)]
    return "\n".join(lines) + "\n"


def load_embedded(path: Path, inventory: Inventory, first_hour: int, hours: int, raw_from: int) -> int:
    """The embedded store's file as retention leaves it: hourly rollups of every hour, raw readings since
    ``raw_from``. Returns the points loaded (one per meter and hour read)."""
    db = sqlite3.connect(path)
    db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    db.executescript("""
        CREATE TEMP TABLE hours (k INTEGER PRIMARY KEY);
        CREATE TEMP TABLE profile (h INTEGER PRIMARY KEY, cum INTEGER);
        CREATE TEMP TABLE params (series INTEGER PRIMARY KEY, base INTEGER, rate INTEGER);
    """)
    db.execute("WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < ?) "
               "INSERT INTO hours SELECT k FROM n", (hours,))  # fmt: skip
    cumulative, total = [], 0.0
    for weight in WEIGHTS:
        total += weight
        cumulative.append(round(1000 * total / sum(WEIGHTS)))  # per mille of the day's use
    db.executemany("INSERT INTO profile VALUES (?, ?)", list(enumerate(cumulative)))
    params, series = [], []
    rates: dict[str, int] = {}  # hundredths of a kWh (or m³) a day
    children: dict[str, list[str]] = {}
    for device in inventory.devices.values():
        if device.parent is not None:
            children.setdefault(device.parent, []).append(device.id)
    devices = sorted(inventory.devices.values(), key=lambda device: device.parent is None)  # sub-meters first
    for number, device in enumerate(devices, start=1):
        kind = inventory.model_of(device).kind
        below = children.get(device.id)
        # A main meter measures 4 % more than its sub-meters: losses, and what is not sub-metered.
        rate = (
            sum(rates[child] for child in below) * 104 // 100
            if below
            else (120 + number % 37 * 60) // (10 if kind == "water" else 1)
        )
        rates[device.id] = rate
        series.append((number, kind, device.id, CUMULATIVE_FIELD[kind], "number"))
        params.append((number, 100_000 + number % 500 * 100, rate))
    db.executemany("INSERT INTO series VALUES (?, ?, ?, ?, ?)", series)
    db.executemany("INSERT INTO params VALUES (?, ?, ?)", params)
    # Counters in whole hundredths, divided once: the value printed with two decimals for influxd is the
    # same number. The local hour of absolute UTC hour a0 + k is (a0 + k + 8) % 24 in Asia/Shanghai. Every
    # 97th meter is silent two days in 30 (a local day without a reading: a gap); a reading in a thousand is missing.
    db.execute(
        """
        INSERT INTO hourly (series, hour, count, sum, min, max, first_ts, first, last_ts, last)
        SELECT series, hour, 1, v, v, v, ts, v, ts, v FROM (
            SELECT p.series AS series, :t0 + h.k * :hour AS hour,
                   :t0 + h.k * :hour + 1800000000 + p.series % 600 * 1000000 AS ts,
                   (p.base + p.rate * ((:a0 + h.k + 8) / 24 - :d0) + p.rate * pr.cum / 1000) / 100.0 AS v
            FROM params p CROSS JOIN hours h JOIN profile pr ON pr.h = (:a0 + h.k + 8) % 24
            WHERE (p.series * 7919 + h.k * 104729) % 1009 != 0
              AND (p.series % 97 != 0 OR h.k / 24 % 30 NOT BETWEEN 7 AND 8)
        )
        """,
        {"t0": first_hour, "hour": HOUR_US, "a0": first_hour // HOUR_US, "d0": (first_hour // HOUR_US + 8) // 24},
    )
    db.execute("INSERT INTO raw (series, ts, value) SELECT series, last_ts, last FROM hourly WHERE hour >= ?",
               (raw_from,))  # fmt: skip
    db.commit()
    points = int(db.execute("SELECT count(*) FROM hourly").fetchone()[0])
    db.close()
    return points


def line_batches(path: Path, inventory: Inventory) -> Iterator[tuple[bytes, int]]:
    """The embedded store's points as line protocol (seconds), about ``POINTS_PER_WRITE`` a batch."""
    db = sqlite3.connect(path)
    db.execute("CREATE TEMP TABLE prefix (series INTEGER PRIMARY KEY, text TEXT)")
    prefixes = []
    for series_id, measurement, device_id, field in db.execute("SELECT id, measurement, device, field FROM series"):
        device = inventory.devices[device_id]
        code = inventory.energy_code(device) or ""
        prefixes.append((series_id, f"{measurement},building={device.building},device={device_id},"
                                    f"energy_code={code} {field}="))  # fmt: skip
    db.executemany("INSERT INTO prefix VALUES (?, ?)", prefixes)
    rows = db.execute(
        "SELECT count(*), group_concat(p.text || printf('%.2f', h.last) || ' ' || (h.last_ts / 1000000), char(10)) "
        "FROM hourly h JOIN prefix p ON p.series = h.series GROUP BY h.series ORDER BY h.series"
    )
    batch: list[str] = []
    points = 0
    for count, text in rows:
        batch.append(text)
        points += count
        if points >= POINTS_PER_WRITE:
            yield "\n".join(batch).encode(), points
            batch, points = [], 0
    if batch:
        yield "\n".join(batch).encode(), points
    db.close()


def load_influx(influxd: Influxd, path: Path, inventory: Inventory) -> int:
    """Every point of the embedded store into influxd (database ``bench``); two writes in flight."""
    httpx.post(f"{influxd.url}/query", data={"q": "CREATE DATABASE bench"}, timeout=30).raise_for_status()
    batches: Queue[bytes | None] = Queue(maxsize=4)
    failures: list[str] = []

    def writer() -> None:
        with httpx.Client(base_url=influxd.url, timeout=600) as client:
            while (body := batches.get()) is not None:
                response = client.post("/write", params={"db": "bench", "precision": "s"}, content=body)
                if response.status_code != 204:
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    writers = [threading.Thread(target=writer) for _ in range(2)]
    for thread in writers:
        thread.start()
    total = 0
    for body, points in line_batches(path, inventory):
        batches.put(body)
        total += points
    for _ in writers:
        batches.put(None)
    for thread in writers:
        thread.join()
    if failures:
        raise SystemExit(f"influxd refused {len(failures)} writes, the first: {failures[0]}")
    return total


async def timed(report: Callable[[], Awaitable[EnergyReport]], runs: int = 3) -> tuple[float, EnergyReport]:
    seconds = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = await report()
        seconds.append(time.perf_counter() - started)
    assert result is not None
    return statistics.median(seconds), result


def agree(a: EnergyReport, b: EnergyReport) -> None:
    """The same lines, amounts and gaps (amounts to a millionth: floats summed in another order)."""
    for mine, theirs in ((a.totals, b.totals), (a.sub_items, b.sub_items)):
        assert [(x.building, x.code, x.gaps, x.meters) for x in mine] == [
            (y.building, y.code, y.gaps, y.meters) for y in theirs
        ]
        for x, y in zip(mine, theirs, strict=True):
            for p, q in zip(x.amounts, y.amounts, strict=True):
                assert (p is None) == (q is None) and abs((p or 0) - (q or 0)) <= 1e-6 * max(1.0, abs(p or 0)), (x, y)


async def campus(meters: int, days: int, workdir: Path) -> dict[str, float]:
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
    text = campus_text(meters)
    (workdir / "devices.yaml").write_text(text)
    started = time.perf_counter()
    inventory = load_inventory(workdir / "devices.yaml")
    print(f"inventory of {len(inventory.devices)} meters loaded in {time.perf_counter() - started:.1f} s")
    settings = TelemetrySettings()
    tz = ZoneInfo(inventory.site.timezone)
    now = datetime.now(UTC)
    last_hour = int(now.timestamp()) // 3600 * HOUR_US
    first_hour = last_hour - (days * 24 - 1) * HOUR_US
    raw_from = (int((now - timedelta(days=settings.embedded_raw_days)).timestamp()) // 3600 + 1) * HOUR_US
    path = workdir / "telemetry.sqlite3"
    loaded = workdir / "loaded"  # what a kept directory holds: the points, loaded up to that hour
    kept = loaded.read_text().split() if loaded.exists() else []
    if kept[:2] == [str(meters), str(days)]:
        last_hour = int(kept[2])  # the reports' "now" is the kept points' last hour
        now = datetime.fromtimestamp(last_hour / 1e6 + 3599, UTC)
        points = int(sqlite3.connect(path).execute("SELECT count(*) FROM hourly").fetchone()[0])
        print(f"embedded store: {points:,} points kept from a run up to {now:%Y-%m-%d %H:%M}Z")
    else:
        loaded.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        started = time.perf_counter()
        points = load_embedded(path, inventory, first_hour, days * 24, raw_from)
        print(f"embedded store: {points:,} points loaded in {time.perf_counter() - started:.0f} s "
              f"({path.stat().st_size / 1e9:.1f} GB)")  # fmt: skip
    local_today = now.astimezone(tz).date()
    past_month = date(local_today.year - (local_today.month <= 2), (local_today.month - 3) % 12 + 1, 1)
    embedded = EmbeddedStore(path, settings, timezone=tz)
    await embedded.open()
    figures: dict[str, float] = {}
    try:
        figures["month_report_s"], from_embedded = await timed(
            lambda: energy_report(embedded, inventory, "month", past_month, tz, now=now)
        )
        figures["raw_month_report_s"], _ = await timed(
            lambda: energy_report(embedded, inventory, "month", local_today, tz, now=now)
        )
    finally:
        await embedded.close()
    gaps = sum(not read for use in from_embedded.uses for read in use.usage.read)
    print(f"embedded: the report of {past_month:%Y-%m} ({len(from_embedded.uses)} meters, {gaps} meter-days "
          f"without a reading) in "
          f"{figures['month_report_s']:.2f} s; this month so far in {figures['raw_month_report_s']:.2f} s")  # fmt: skip
    with influxd_server(INFLUX_DATA, keep=workdir / "influxd") as influxd:
        if not loaded.exists():
            started = time.perf_counter()
            written = load_influx(influxd, path, inventory)
            print(f"influxd: {written:,} points loaded in {time.perf_counter() - started:.0f} s")
            loaded.write_text(f"{meters} {days} {last_hour}")
        spool = Spool(workdir / "spool", 1 << 20)
        influx = InfluxStore(InfluxSettings(url=influxd.url, api="v1", database="bench"), settings, spool)
        try:
            seconds, from_influx = await timed(
                lambda: energy_report(influx, inventory, "month", past_month, tz, now=now)
            )
        finally:
            await influx.client.close()
    agree(from_embedded, from_influx)
    print(f"influxd: the same report in {seconds:.2f} s; the two reports agree")
    figures["influx_month_report_s"] = seconds
    figures["embedded_vs_influx"] = figures["month_report_s"] / seconds
    figures["points"] = points
    return figures


async def demo(days: int) -> tuple[float, float]:
    inventory = load_inventory(ROOT / "devices.yaml")
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="houqin-bench-")), timezone=inventory.site.timezone)
    now = datetime.now(UTC)
    fill = await demo_history(settings, inventory, days, now)
    store = EmbeddedStore(settings.data_dir / "telemetry.sqlite3", settings.telemetry, timezone=settings.tz)
    await store.open()
    try:
        month = (now - timedelta(days=days // 2)).astimezone(settings.tz).date()
        started = time.perf_counter()
        await energy_report(store, inventory, "month", month, settings.tz, now=now)
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    print(f"demo campus: {days} days of history in {fill:.1f} s; a month's report in {seconds:.2f} s")
    return fill, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=10_000, help="a multiple of 100")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--history-days", type=int, default=60)
    parser.add_argument("--keep", type=Path, help="keep the loaded points here, and use them again")
    args = parser.parse_args()
    if args.keep is not None:
        figures = asyncio.run(campus(args.meters, args.days, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="houqin-bench-") as workdir:
            figures = asyncio.run(campus(args.meters, args.days, Path(workdir)))
    fill, demo_report = asyncio.run(demo(args.history_days))
    print(
        f"meters={args.meters} days={args.days} points={figures['points']:.0f} "
        f"month_report_s={figures['month_report_s']:.2f} raw_month_report_s={figures['raw_month_report_s']:.2f} "
        f"influx_month_report_s={figures['influx_month_report_s']:.2f} "
        f"embedded_vs_influx={figures['embedded_vs_influx']:.2f} "
        f"history_fill_s={fill:.1f} demo_month_report_s={demo_report:.2f}"
    )


if __name__ == "__main__":
    main()
