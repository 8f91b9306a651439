"""Energy by building, category and sub-item from real readings in the embedded store: roots summed once,
sub-items from the leaves, what no sub-meter accounts for shown as unaccounted, a silent meter counted as
a gap (never a zero), intensities, coal and CO2, the tree balance with a planted missing sub-meter, and
the API's answers and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from houqin.energy.report import energy_report, tree_balance
from houqin.inventory import Inventory, load_inventory
from houqin.readings import Reading
from houqin.settings import InfluxSettings, TelemetrySettings
from houqin.telemetry.embedded_store import EmbeddedStore
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.spool import Spool
from tests.api_client import sign_in
from tests.servers import Influxd

TZ = ZoneInfo("Asia/Shanghai")
CAMPUS = """
site: {name: Energy campus, timezone: Asia/Shanghai}
tariffs: [{id: flat, price_fen_per_kwh: 56}]
gateways: [{id: gw, type: modbus_tcp, host: 127.0.0.1, port: 1502}]
buildings:
  - {id: library, name: 图书馆, floor_area_m2: 1000, occupants: 100}
devices:
  - {id: lib-main, model: eastron-sdm630, gateway: gw, unit: 1, building: library, energy_code: "01000"}
  - {id: lib-lights, model: eastron-sdm120, gateway: gw, unit: 2, building: library, energy_code: 01A00,
     parent: lib-main}
  - {id: lib-ac, model: eastron-sdm120, gateway: gw, unit: 3, building: library, energy_code: 01B00,
     parent: lib-main}
  - {id: lib-water, model: mqtt-water-meter, topic: lib/water, building: library}
  - {id: r1-meter, model: eastron-sdm120, gateway: gw, unit: 4, building: dorm}
  - {id: r2-meter, model: eastron-sdm120, gateway: gw, unit: 5, building: dorm}
rooms:
  - {id: R1, building: dorm, floor: 1, meter: r1-meter, tariff: flat}
  - {id: R2, building: dorm, floor: 1, meter: r2-meter, tariff: flat}
"""
# kWh (or m³) each meter adds per hour.
RATES = {"lib-main": 10.0, "lib-lights": 3.0, "lib-ac": 5.0, "lib-water": 0.5, "r1-meter": 1.0, "r2-meter": 2.0}
START = datetime(2026, 11, 1, tzinfo=TZ)
NOW = datetime(2026, 11, 3, 23, 30, tzinfo=TZ)  # read hourly from the evening before, through the 3rd


@pytest.fixture
def campus(tmp_path: Path) -> Inventory:
    (tmp_path / "devices.yaml").write_text(CAMPUS, encoding="utf-8")
    return load_inventory(tmp_path / "devices.yaml")


@pytest.fixture
async def store(tmp_path: Path, campus: Inventory) -> AsyncIterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "telemetry.sqlite3", TelemetrySettings(), timezone=TZ)
    await store.open()
    await store.consume(campus_readings(campus))
    yield store
    await store.close()


def campus_readings(campus: Inventory) -> list[Reading]:
    readings = []
    for hour in range(-1, 3 * 24):
        at = START + timedelta(hours=hour)
        for meter, rate in RATES.items():
            if meter == "lib-ac" and 24 <= hour < 48:
                continue  # silent all of the 2nd: what it used shows on the 3rd
            device = campus.devices[meter]
            field = "total" if meter == "lib-water" else "energy"
            readings.append(
                Reading(meter, at.astimezone(UTC), {field: 1000.0 + rate * hour}, campus.device_tags(device))
            )
    return readings


async def test_the_same_report_from_influxdb(
    store: EmbeddedStore, campus: Inventory, influxd: Influxd, tmp_path: Path
) -> None:
    """The readings written to a real influxd through houqin's InfluxDB store: the same report, line for
    line, for a month (days) and a day (hours)."""
    influx = InfluxStore(InfluxSettings(url=influxd.url, api="v1", database="energy"),
                         TelemetrySettings(flush_seconds=0.05), Spool(tmp_path / "spool", 1 << 30))  # fmt: skip
    stop = asyncio.Event()
    running = asyncio.create_task(influx.run(stop))
    await influx.consume(campus_readings(campus))
    stop.set()
    await running
    try:
        for period, day in (("month", date(2026, 11, 15)), ("day", date(2026, 11, 2))):
            ours = await energy_report(store, campus, period, day, TZ, now=NOW.astimezone(UTC))  # type: ignore[arg-type]
            theirs = await energy_report(influx, campus, period, day, TZ, now=NOW.astimezone(UTC))  # type: ignore[arg-type]
            assert (ours.totals, ours.sub_items) == (theirs.totals, theirs.sub_items), period
            assert sum(line.total for line in ours.totals) > 0 and any(line.gaps for line in ours.sub_items)
    finally:
        await influx.client.close()


async def test_a_month_by_building_category_and_sub_item(store: EmbeddedStore, campus: Inventory) -> None:
    report = await energy_report(store, campus, "month", date(2026, 11, 15), TZ, now=NOW.astimezone(UTC))
    totals = {(line.building, line.code): line for line in report.totals}
    assert set(totals) == {("dorm", "01000"), ("library", "01000"), ("library", "02000")}
    assert totals[("library", "01000")].total == pytest.approx(720)  # the main meter only: not 720 + 576
    assert totals[("library", "01000")].amounts[:4] == [240, 240, 240, None]
    assert totals[("dorm", "01000")].total == pytest.approx(216) and totals[("dorm", "01000")].meters == 2
    assert totals[("library", "02000")].total == pytest.approx(36)
    items = {(line.building, line.code): line for line in report.sub_items}
    lights, ac = items[("library", "01A00")], items[("library", "01B00")]
    assert lights.total == pytest.approx(216) and ac.total == pytest.approx(360)
    assert ac.amounts[:3] == [120, 0, 240] and ac.gaps == 1  # the silent day is a gap, its use shown on the 3rd
    unaccounted = items[("library", "01000:unaccounted")]
    # 48 kWh a day no sub-meter accounts for; the air conditioning's silent day moves 120 of it a day on.
    assert unaccounted.amounts[:3] == [48, 168, -72] and unaccounted.total == pytest.approx(144)
    assert ("dorm", "01000:unaccounted") not in items  # no tree in the dorm: nothing to account for
    [balance] = tree_balance(report.uses, NOW.astimezone(UTC))
    assert (balance.meter, balance.children) == ("lib-main", 2)
    assert balance.share == pytest.approx(0.2) and not balance.complete
    # Once rolled up, the days come from the daily rollup: the same report.
    await store.rollup()
    again = await energy_report(store, campus, "month", date(2026, 11, 15), TZ, now=NOW.astimezone(UTC))
    assert (again.totals, again.sub_items) == (report.totals, report.sub_items)


async def test_the_energy_api(client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory) -> None:
    """The demo's dorm 1: a main meter (2 kWh an hour yesterday) above 30 room meters, one of them read
    (1 kWh an hour): the building is its main meter, its rooms' sockets and lights a sub-item, the rest
    unaccounted; the 29 silent room meters are gaps, and the balance says the tree is incomplete."""
    staff, student = await sign_in(client, "li"), await sign_in(client, "alice")
    yesterday = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    readings = []
    for meter, rate in (("dorm1-main-meter", 2.0), ("d1-101-meter", 1.0)):
        tags = demo_inventory.device_tags(demo_inventory.devices[meter])
        hours = [(yesterday + timedelta(hours=h)).astimezone(UTC) for h in range(-1, 24)]
        readings += [Reading(meter, at, {"energy": 100.0 + rate * h}, tags) for h, at in enumerate(hours, -1)]
    await telemetry.consume(readings)
    day = yesterday.date().isoformat()
    answer = await client.get(f"/api/v1/energy?period=day&date={day}&building=dorm-1", headers=staff)
    assert answer.status_code == 200, answer.text
    energy = answer.json()
    [dorm] = energy["buildings"]
    assert (dorm["name"], dorm["floor_area_m2"], dorm["occupants"]) == ("一号宿舍楼 Dorm 1", 4800, 120)
    [electricity] = [c for c in dorm["categories"] if c["code"] == "01000"]
    assert electricity["total"] == 48 and electricity["unit"] == "kWh" and len(energy["windows"]) == 24
    assert electricity["per_m2"] == pytest.approx(48 / 4800, abs=1e-4) and electricity["per_occupant"] == 0.4
    assert electricity["kgce"] == pytest.approx(48 * 0.1229, abs=1e-3)
    assert electricity["co2_kg"] == pytest.approx(48 * 0.5703, abs=1e-3)
    items = {item["code"]: item for item in dorm["sub_items"]}
    assert items["01A00"]["total"] == 24 and items["01A00"]["gaps"] == 29 * 24  # silent meters: said, not hidden
    assert items["01000:unaccounted"]["total"] == 24
    [balance] = (await client.get(f"/api/v1/energy/balance?period=day&date={day}&building=dorm-1",
                                  headers=staff)).json()  # fmt: skip
    assert (balance["meter"], balance["children"], balance["share"], balance["complete"]) == (
        "dorm1-main-meter",
        30,
        0.5,
        False,
    )
    # A term from the school calendar: its days, and the term before for comparison. (A window reaching back
    # past the raw readings kept is answered from the hourly rollups, made every minute: made now.)
    await telemetry.rollup()
    for name, start, end in (("2026 spring", "2026-02-20", "2026-07-10"), ("2026 autumn", "2026-09-01", "2027-01-22")):
        put = await client.put(f"/api/v1/calendar/terms/{name}", json={"start": start, "end": end}, headers=staff)
        assert put.status_code in (200, 201), put.text
    term = (await client.get(f"/api/v1/energy?period=term&date={day}&building=dorm-1", headers=staff)).json()
    assert len(term["windows"]) == 144 and term["windows"][0].startswith("2026-09-01")
    [whole] = [c for c in term["buildings"][0]["categories"] if c["code"] == "01000"]
    assert whole["total"] == 48 and whole["previous"] is None
    outside = await client.get("/api/v1/energy?period=term&date=2026-08-01", headers=staff)
    assert outside.status_code == 422 and "no term holds 2026-08-01" in outside.text
    for bad, code in (("period=week", 422), ("period=day&date=2099-01-01", 422), ("building=nowhere", 404),
                      ("category=01A00", 422), ("date=2026-13-01", 422)):  # fmt: skip
        answer = await client.get(f"/api/v1/energy?{bad}", headers=staff)
        assert answer.status_code == code, (bad, answer.text)
    assert (await client.get("/api/v1/energy", headers=student)).status_code == 403


async def test_the_overview(client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory) -> None:
    staff, student = await sign_in(client, "li"), await sign_in(client, "alice")
    now = datetime.now(UTC)
    midnight = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    readings = []
    for meter, rate in (("d1-101-meter", 1.0), ("d1-102-meter", 3.0), ("dorm1-main-meter", 5.0)):
        tags = demo_inventory.device_tags(demo_inventory.devices[meter])
        start = midnight - timedelta(days=1, hours=1)
        hours = int((now - start).total_seconds() // 3600)
        readings += [Reading(meter, (start + timedelta(hours=h)).astimezone(UTC), {"energy": 50.0 + rate * h}, tags)
                     for h in range(hours + 1)]  # fmt: skip
        fields = {"energy": 50.0 + rate * hours, "power": rate * 1000}
        readings.append(Reading(meter, now - timedelta(seconds=30), fields, tags))
    await telemetry.consume(readings)
    answer = await client.get("/api/v1/overview", headers=staff)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["top_rooms"][0]["room"] == "D1-102" and seen["top_rooms"][1]["room"] == "D1-101"
    elapsed = sum(1 for hour in seen["hours"] if datetime.fromisoformat(hour) <= now)
    # The campus is its main meters (the rooms hang from dorm 1's): every hour of yesterday, 5 kWh.
    assert seen["yesterday_kwh"][: elapsed - 1] == [5.0] * (elapsed - 1)
    assert seen["yesterday_same_time_kwh"] == pytest.approx(5.0 * elapsed)
    assert seen["load_kw"] == pytest.approx(5.0) and seen["load_missing"] == seen["load_meters"] - 1
    dorm = next(b for b in seen["buildings"] if b["id"] == "dorm-1")
    assert dorm["electricity_kwh"] == pytest.approx(seen["today_total_kwh"]) and dorm["gaps"] > 0
    assert seen["devices"] == len(demo_inventory.devices) and seen["never_seen"] > 0
    assert (await client.get("/api/v1/overview", headers=student)).status_code == 403


async def test_the_report_as_csv_and_xlsx_holds_the_report_s_figures(
    store: EmbeddedStore, campus: Inventory, tmp_path: Path
) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    from houqin.energy.export import report_title, to_csv, to_xlsx
    from houqin.settings import EnergySettings

    report = await energy_report(store, campus, "month", date(2026, 11, 15), TZ, now=NOW.astimezone(UTC))
    body = to_csv(report, campus, EnergySettings(), TZ)
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Chinese spreadsheet software reads it right
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    head, lines = rows[0], rows[1:]
    assert head[:3] == ["楼栋 building", "行 row", "分类分项 code"] and head[12:15] == ["11-01", "11-02", "11-03"]
    library = next(line for line in lines if line[0] == "图书馆" and line[1] == "total" and line[2] == "01000")
    assert float(library[5]) == 720 and float(library[6]) == 0.72 and float(library[7]) == 7.2  # per m², per person
    assert float(library[8]) == pytest.approx(720 * 0.1229, abs=1e-3)
    ac = next(line for line in lines if line[0] == "图书馆" and line[2] == "01B00")
    assert ac[10] == "1" and ac[12:16] == ["120.0", "0.0", "240.0", ""]  # the gap counted; no reading: empty

    book = load_workbook(io.BytesIO(to_xlsx(report, campus, EnergySettings(), TZ, report_title(report, TZ, NOW))))
    assert book.sheetnames == ["全校 Campus", "dorm", "图书馆"]
    campus_sheet = book["全校 Campus"]
    assert str(campus_sheet["A1"].value).startswith("能耗报表 Energy report 2026-11")
    values = {(r[0], r[2]): r[5] for r in campus_sheet.iter_rows(min_row=3, values_only=True)}
    assert values == {("dorm", "01000"): 216.0, ("图书馆", "01000"): 720.0, ("图书馆", "02000"): 36.0}


async def test_the_report_download_and_the_command(
    client: httpx.AsyncClient, telemetry: EmbeddedStore, demo_inventory: Inventory, tmp_path: Path
) -> None:
    import io
    import os
    import subprocess

    from openpyxl import load_workbook

    from tests.conftest import DEMO_INVENTORY
    from tests.live_demo import HOUQIN

    staff = await sign_in(client, "li")
    yesterday = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    tags = demo_inventory.device_tags(demo_inventory.devices["dorm1-main-meter"])
    hours = [(yesterday + timedelta(hours=h)).astimezone(UTC) for h in range(-1, 24)]
    await telemetry.consume([Reading("dorm1-main-meter", at, {"energy": 100.0 + 2 * h}, tags)
                             for h, at in enumerate(hours, -1)])  # fmt: skip
    query = f"period=day&date={yesterday.date()}&building=dorm-1"
    api = (await client.get(f"/api/v1/energy?{query}", headers=staff)).json()
    [electricity] = [c for c in api["buildings"][0]["categories"] if c["code"] == "01000"]
    answer = await client.get(f"/api/v1/energy/report?{query}&format=xlsx", headers=staff)
    assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(answer.content))["全校 Campus"]
    [row] = [r for r in sheet.iter_rows(min_row=3, values_only=True) if r[2] == "01000"]
    assert (row[5], row[6], row[8], row[9]) == (electricity["total"], electricity["per_m2"], electricity["kgce"],
                                                electricity["co2_kg"])  # fmt: skip
    csv_answer = await client.get(f"/api/v1/energy/report?{query}&format=csv", headers=staff)
    assert csv_answer.content.startswith(b"\xef\xbb\xbf") and csv_answer.headers["content-type"].startswith("text/csv")
    bad = await client.get("/api/v1/energy/report?period=day&date=2099-01-01", headers=staff)
    assert bad.status_code == 422
    assert (await client.get("/api/v1/energy/report", headers=await sign_in(client, "alice"))).status_code == 403

    # The command, as a site runs it: bad options named, the file written.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {"HOUQIN_DATA_DIR": str(tmp_path), "HOUQIN_INVENTORY": str(DEMO_INVENTORY)}

    def houqin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HOUQIN, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return houqin("report", "energy", *args)

    assert "give exactly one of" in command("--month", "2026-11", "--day", "2026-11-02").stderr
    assert "--month: '2026-13' is not a month" in command("--month", "2026-13").stderr
    assert "--building: no building 'nowhere'" in command("--month", "2026-11", "--building", "nowhere").stderr
    assert "has not begun" in command("--year", "2099").stderr
    made = command("--month", "2026-11", "--format", "csv", "--output", "november.csv")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "november.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    # A term comes from the school calendar: by name, or by a day in it.
    assert "--term: no term 'autumn'; terms: none in the calendar" in command("--term", "autumn").stderr
    calendar = Path(__file__).resolve().parent.parent / "houqin" / "schedules" / "demo" / "calendar.yaml"
    imported = houqin("schedules", "calendar", str(calendar))
    assert imported.returncode == 0, imported.stderr
    assert (
        "no term holds 2026-08-01; terms: 2026 autumn (2026-09-01–2027-01-22)" in command("--term", "2026-08-01").stderr
    )
    by_name = command("--term", "2026 autumn", "--format", "csv")
    assert by_name.returncode == 0, by_name.stderr
    assert (tmp_path / "houqin-energy-2026-09-01-term.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    by_day = command("--term", "2026-11-20", "--format", "xlsx", "--output", "term.xlsx")
    assert by_day.returncode == 0, by_day.stderr
    assert load_workbook(tmp_path / "term.xlsx").sheetnames
