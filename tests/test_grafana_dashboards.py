"""The dashboards as code: the committed JSON and provisioning are what the code generates; every dashboard
is well formed for the schema version it declares; every InfluxQL query, its variables filled with real
values, answers series from a real influxd fed by the simulated campus; every SQL query answers rows from
a real PostgreSQL holding what the campus's services recorded."""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from assembly import ProcessRole, assemble
from grafana.builder import GRID_COLUMNS, INFLUX_UID, POSTGRES_UID
from grafana.generate import DASHBOARD_DIR, PROVISIONING_DIR, dashboards, stale
from houqin.dashboards import CAMPUS_ENERGY, SHIPPED
from houqin.settings import InfluxSettings, Settings, TelemetrySettings
from houqin.store import Database
from tests.campus_history import record_campus_history
from tests.conftest import create_pg_database
from tests.servers import Influxd, Postgres

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "campus"
VARIABLE = re.compile(r"\$(\w+)")


def queries(dashboard: dict[str, Any], source: str) -> list[tuple[str, str]]:
    """(panel title, query) of every target of the given data source uid."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["datasource"]["uid"] == source:
                found.append((panel["title"], target.get("query") or target.get("rawSql")))
    return found


def all_dashboards() -> list[dict[str, Any]]:
    return list(dashboards().values())


# --- the files -------------------------------------------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    assert stale() == [], "run `houqin grafana generate` and commit the result"


def test_the_web_pages_link_to_the_dashboards_that_are_built() -> None:
    built = {(board["uid"], board["title"]) for board in dashboards().values()}
    assert built == {(ref.uid, ref.title) for ref in SHIPPED}
    assert CAMPUS_ENERGY.url("http://grafana.campus:3000/") == "http://grafana.campus:3000/d/houqin-campus-energy"


def test_dashboards_are_well_formed_for_their_schema_version() -> None:
    provisioned = yaml.safe_load((PROVISIONING_DIR / "datasources" / "houqin.yaml").read_text(encoding="utf-8"))
    source_uids = {(source["type"], source["uid"]) for source in provisioned["datasources"]}
    assert {uid for _, uid in source_uids} == {INFLUX_UID, POSTGRES_UID}
    uids = set()
    for dashboard in all_dashboards():
        assert dashboard["schemaVersion"] == 39 and isinstance(dashboard["version"], int)
        assert 1 <= len(dashboard["uid"]) <= 40 and dashboard["uid"] not in uids
        uids.add(dashboard["uid"])
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{dashboard['title']}: panel ids repeat"
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] >= 1 and grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}  # fmt: skip
            assert not area & cells, f"{dashboard['title']}: {panel['title']} overlaps another panel"
            cells |= area
            references = [panel["datasource"], *(target["datasource"] for target in panel["targets"])]
            for reference in references:
                assert (reference["type"], reference["uid"]) in source_uids, (panel["title"], reference)
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids))
        names = [variable["name"] for variable in dashboard["templating"]["list"]]
        for variable in dashboard["templating"]["list"]:
            assert (variable["datasource"]["type"], variable["datasource"]["uid"]) in source_uids
        used = {name for panel in dashboard["panels"] for target in panel["targets"]
                for name in VARIABLE.findall(target.get("query") or target.get("rawSql"))}  # fmt: skip
        builtin = {"timeFilter", "__interval", "__timeFilter", "tag_building", "tag_room", "tag_device",
                   "tag_gateway", "tag_instance"}  # fmt: skip
        assert used - builtin <= set(names), f"{dashboard['title']}: undefined variables {used - builtin - set(names)}"


def test_a_time_series_drawn_as_bars_says_so_where_grafana_reads_it() -> None:
    """Grafana reads a time series' draw style from ``fieldConfig.defaults.custom``; set in the panel's
    options it is ignored and the panel draws lines. The builder refuses it there."""
    from grafana.builder import Panel

    bars = [panel for dashboard in all_dashboards() for panel in dashboard["panels"]
            if panel["fieldConfig"]["defaults"].get("custom", {}).get("drawStyle") == "bars"]  # fmt: skip
    assert {panel["title"] for panel in bars} >= {"Top-ups per day"} and len(bars) >= 2
    for dashboard in all_dashboards():
        for panel in dashboard["panels"]:
            assert "drawStyle" not in panel["options"], panel["title"]
    with pytest.raises(ValueError, match="drawStyle belongs in the field config"):
        Panel("Wrong", "timeseries", options={"drawStyle": "bars"})
    with pytest.raises(ValueError, match="draw= is a time series' setting"):
        Panel("Wrong", "table", draw="bars")


def _lost(given: Any, kept: Any, path: str = "") -> list[str]:
    """Where ``kept`` lacks what ``given`` has: the fields Grafana's own models do not know there."""
    lost: list[str] = []
    if isinstance(given, dict):
        if not isinstance(kept, dict):
            return [f"{path} (not an object to Grafana)"]
        for key, value in given.items():
            where = f"{path}.{key}"
            lost += [where] if key not in kept else _lost(value, kept[key], where)
    elif isinstance(given, list):
        if not isinstance(kept, list) or len(given) != len(kept):
            return [f"{path} (a list Grafana reads differently)"]
        for index, (mine, theirs) in enumerate(zip(given, kept, strict=True)):
            lost += _lost(mine, theirs, f"{path}[{index}]")
    return lost


def _through_grafana(dashboard: dict[str, Any]) -> list[str]:
    """The dashboard read by the models Grafana publishes for the version the compose stack runs
    (grafana-foundation-sdk 11.3, with every panel plugin's options and field config), and written back."""
    import json

    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    kept = json.loads(json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder))
    return _lost(dashboard, kept)


def test_every_field_of_every_dashboard_is_one_grafana_knows_where_it_is() -> None:
    compose = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    assert "grafana/grafana-oss:11.3." in compose  # the models below are Grafana 11.3's
    for dashboard in all_dashboards():
        assert _through_grafana(dashboard) == [], dashboard["title"]
    # The check can fail: the draw style in the panel's options (where Grafana ignores it), and a typo.
    planted = copy.deepcopy(all_dashboards()[0])
    planted["panels"][0]["options"]["drawStyle"] = "bars"
    planted["panels"][1]["fieldConfig"]["defaults"]["unitt"] = "kWh"
    planted["refreshh"] = "1m"
    assert set(_through_grafana(planted)) == {".panels[0].options.drawStyle", ".panels[1].fieldConfig.defaults.unitt",
                                             ".refreshh"}  # fmt: skip


def test_provisioning_points_at_the_generated_dashboards() -> None:
    providers = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "houqin.yaml").read_text(encoding="utf-8"))
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    path = providers["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(dashboards())


# --- InfluxQL against influxd fed by the simulated campus -------------------------------------------------


@pytest.fixture(scope="module")
async def campus_influx(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Influxd]:
    """The demo campus (polled every second) collected for a while into a real influxd, one device offline."""
    workdir = tmp_path_factory.mktemp("campus-influx")
    inventory_file = workdir / "devices.yaml"
    demo = (ROOT / "devices.yaml").read_text(encoding="utf-8")
    inventory_file.write_text(re.sub(r"poll_interval: \d+", "poll_interval: 1", demo), encoding="utf-8")
    from houqin.inventory import load_inventory

    inventory = load_inventory(inventory_file)
    telemetry = TelemetrySettings(batch_points=500, flush_seconds=0.2, self_report_seconds=1)
    influx = InfluxSettings(url=influxd.url, api="v1", database=DATABASE)
    settings = Settings(data_dir=workdir, embedded_mqtt_port=0, telemetry=telemetry, influx=influx)
    async with assemble(settings, inventory, roles={ProcessRole.COLLECT}, simulate=True) as houqin:
        assert houqin.simulator is not None
        houqin.simulator.inject("d1-110-meter", "offline")
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        try:
            # Collected until every panel has something to show and the silent meter counts as offline.
            async with asyncio.timeout(60):
                while not await asyncio.to_thread(campus_recorded, influxd):
                    await asyncio.sleep(0.5)
        finally:
            stop.set()
            await running
    yield influxd


def campus_recorded(server: Influxd) -> bool:
    """Every InfluxQL panel returns a value, and the device health dashboard counts one device offline."""
    for dashboard in dashboards().values():
        for _title, query in queries(dashboard, INFLUX_UID):
            try:
                series = server.query(DATABASE, fill_influxql(server, dashboard, query))
            except AssertionError:  # a variable with no values yet
                return False
            if not any(value is not None for one in series for row in one["values"] for value in row[1:]):
                return False
    health = dashboards()["device-health.json"]
    (offline,) = [query for title, query in queries(health, INFLUX_UID) if title == "Devices offline"]
    series = server.query(DATABASE, fill_influxql(server, health, offline))
    return bool(series) and series[0]["values"][0][1] == 1


def influx_values(server: Influxd, query: str) -> list[str]:
    return [str(row[1]) for series in server.query(DATABASE, query) for row in series["values"]]


def fill_influxql(server: Influxd, dashboard: dict[str, Any], query: str) -> str:
    """Grafana's substitutions: the time range, the interval, and each variable as every value it can take
    (Grafana's "All" for a regex match: ``(a|b|c)``), the values asked of influxd the way Grafana asks."""
    values: dict[str, str] = {}
    for variable in dashboard["templating"]["list"]:
        found = influx_values(server, fill(variable["query"], values))
        assert found, f"variable {variable['name']}: no values"
        values[variable["name"]] = "(" + "|".join(re.escape(value) for value in found) + ")"
    return fill(query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "2s"), values)


def fill(query: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda match: values.get(match.group(1), match.group(0)), query)


@pytest.mark.parametrize("name", sorted(dashboards()))
async def test_every_influxql_query_returns_series(name: str, campus_influx: Influxd) -> None:
    dashboard = dashboards()[name]
    for title, query in queries(dashboard, INFLUX_UID):
        filled = fill_influxql(campus_influx, dashboard, query)
        series = await asyncio.to_thread(campus_influx.query, DATABASE, filled)
        assert series, f"{name}: {title}: no series from\n{filled}"
        assert any(value is not None for one in series for row in one["values"] for value in row[1:]), (title, series)


async def test_the_offline_device_is_counted_offline(campus_influx: Influxd) -> None:
    dashboard = dashboards()["device-health.json"]
    (query,) = [query for title, query in queries(dashboard, INFLUX_UID) if title == "Devices offline"]
    series = campus_influx.query(DATABASE, fill_influxql(campus_influx, dashboard, query))
    assert series[0]["values"][0][1] == 1


# --- SQL against PostgreSQL with what the services recorded ----------------------------------------------


@pytest.fixture(scope="module")
async def campus_pg(postgres: Postgres, demo_inventory: Any) -> AsyncIterator[Database]:
    database = Database(await create_pg_database(postgres))
    await record_campus_history(database, demo_inventory)
    yield database
    await database.close()


def fill_sql(query: str, rooms: list[str], start: datetime, end: datetime) -> str:
    """Grafana's PostgreSQL macros and a multi-value variable (quoted, comma-separated)."""
    query = re.sub(r"\$__timeFilter\(([\w.]+)\)", rf"\1 BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'", query)
    return query.replace("$room", ",".join(f"'{room}'" for room in rooms))


@pytest.mark.parametrize("name", sorted(dashboards()))
async def test_every_sql_query_returns_rows(name: str, campus_pg: Database, demo_inventory: Any) -> None:
    now = datetime.now(UTC)
    rooms = sorted(demo_inventory.rooms)
    for title, query in queries(dashboards()[name], POSTGRES_UID):
        filled = fill_sql(query, rooms, now - timedelta(days=90), now + timedelta(hours=1))
        async with campus_pg.session() as session:
            rows = (await session.execute(text(filled))).all()
        assert rows, f"{name}: {title}: no rows from\n{filled}"


async def test_the_reader_role_reads_the_panels_tables_but_no_account_secrets(
    campus_pg: Database, postgres: Postgres
) -> None:
    from sqlalchemy.exc import ProgrammingError

    from houqin.store.reader import grant_reader

    async with campus_pg.engine.begin() as connection:
        await connection.execute(text("DROP ROLE IF EXISTS grafana_panels"))
        await connection.execute(text("CREATE ROLE grafana_panels LOGIN PASSWORD 'panels'"))
    assert "wallets" in await grant_reader(campus_pg, "grafana_panels")
    await grant_reader(campus_pg, "grafana_panels")  # again: idempotent
    reader = Database(campus_pg.url.set(username="grafana_panels", password="panels").render_as_string(False))
    try:
        async with reader.session() as session:
            assert (await session.execute(text("SELECT count(*) FROM repair_orders"))).scalar()
            assert (await session.execute(text("SELECT display_name FROM users WHERE role = 'worker'"))).all()
            with pytest.raises(ProgrammingError, match="permission denied"):
                await session.execute(text("SELECT password_hash FROM users"))
            await session.rollback()
            with pytest.raises(ProgrammingError, match="permission denied"):
                await session.execute(text("UPDATE wallets SET balance_fen = 0"))
    finally:
        await reader.close()
    with pytest.raises(ValueError, match="no PostgreSQL role"):
        await grant_reader(campus_pg, "nobody_here")
    with pytest.raises(ValueError, match="lower-case"):
        await grant_reader(campus_pg, "x; DROP TABLE users")
