"""The houqin command, run as a user would: a real process, real files, real databases."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx

from houqin.store import head_revision
from tests.conftest import DEMO_INVENTORY, create_pg_database
from tests.live_demo import HOUQIN, houqin_serving, served_url
from tests.servers import Influxd, Postgres


def houqin(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")} | (env or {})
    return subprocess.run(
        [*HOUQIN, *args], cwd=cwd, env=environment, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_check_prints_a_summary(tmp_path: Path) -> None:
    result = houqin("check", str(DEMO_INVENTORY), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"rooms\s+66", result.stdout) and re.search(r"devices\.water\s+5", result.stdout)


def test_check_with_three_mistakes_prints_them_all(tmp_path: Path) -> None:
    text = DEMO_INVENTORY.read_text(encoding="utf-8")
    text = text.replace("unit: 30, building: dorm-2, floor: 3", "unit: 0, building: dorm-2, floor: 3", 1)
    text = text.replace("tariff: dorm-standard}", "tariff: dorm-standrad}", 1)
    text = text.replace("type: rtu_over_tcp", "type: rtu_over_tcpp", 1)
    bad = tmp_path / "devices.yaml"
    bad.write_text(text, encoding="utf-8")
    result = houqin("check", "devices.yaml", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and lines[-1] == "devices.yaml: 3 errors"
    assert all(re.match(r"devices\.yaml:\d+: \S+: ", line) for line in lines[:3]), lines


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = {"HOUQIN_DATABASE_URL": "postgresql+asyncpg://houqin:pg-secret@db/houqin", "HOUQIN_JWT_SECRET": "j" * 40,
           "HOUQIN_INFLUX__TOKEN": "influx-token", "HOUQIN_MQTT_URL": "mqtt://h:mqtt-pw@broker:1883"}  # fmt: skip
    result = houqin("config", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    for secret in ("pg-secret", "j" * 40, "influx-token", "mqtt-pw"):
        assert secret not in result.stdout
    data = json.loads(result.stdout)
    assert data["database_url"] == "postgresql+asyncpg://houqin:***@db/houqin"
    assert data["influx"]["token"] == "***"


async def test_postgres_needs_an_upgrade_then_users_work(postgres: Postgres, tmp_path: Path) -> None:
    url = await create_pg_database(postgres)
    env = {
        "HOUQIN_DATABASE_URL": url,
        "HOUQIN_INVENTORY": str(DEMO_INVENTORY),
        "HOUQIN_DATA_DIR": str(tmp_path),
    }
    refused = houqin("users", "add", "li", "--role", "staff", "--generate", cwd=tmp_path, env=env)
    assert refused.returncode == 1 and "run `houqin db upgrade`" in refused.stderr
    upgraded = houqin("db", "upgrade", cwd=tmp_path, env=env)
    assert upgraded.returncode == 0 and f"empty -> {head_revision()}" in upgraded.stdout
    added = houqin("users", "add", "2023001", "--role", "student", "--room", "D2-210", "--password-stdin",
                   cwd=tmp_path, env=env, stdin="student-password\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    wrong_room = houqin("users", "add", "2023002", "--role", "student", "--room", "D9-999", "--generate",
                        cwd=tmp_path, env=env)  # fmt: skip
    assert wrong_room.returncode == 1 and "unknown room 'D9-999'" in wrong_room.stderr
    people = tmp_path / "people.csv"
    people.write_text("username,role,rooms,team\n2023003,student,D1-110,\nzhang,worker,,plumbing\n", encoding="utf-8")
    imported = houqin("users", "import", str(people), cwd=tmp_path, env=env)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.splitlines()[0] == "username,password" and len(imported.stdout.splitlines()) == 3
    listed = houqin("users", "list", cwd=tmp_path, env=env)
    assert re.search(r"2023001\s+student\s+active\s+D2-210", listed.stdout)
    assert re.search(r"zhang\s+worker\s+active\s+plumbing", listed.stdout)


def wait_for_metric(url: str, pattern: str, seconds: float = 30) -> float:
    """The value of the /metrics line matching ``pattern`` once it is at least 1."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        match = re.search(pattern, httpx.get(f"{url}/metrics", timeout=5).text)
        if match and float(match.group(1)) >= 1:
            return float(match.group(1))
        time.sleep(0.5)
    raise AssertionError(f"{pattern} not at least 1 in /metrics within {seconds:.0f} s")


def test_demo_serves_and_stops_cleanly(tmp_path: Path) -> None:
    # The documented setting is honoured (a --port flag would win over it; the page tests use one).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"HOUQIN_API_PORT": str(port)}
    with houqin_serving("demo", data=tmp_path, env=env, pipe_stderr=True) as process:
        started = time.monotonic()
        head: list[str] = []
        url = served_url(process, head=head)
        assert url == f"http://127.0.0.1:{port}"
        # Each simulated gateway's address is in the log, and a Modbus master houqin did not write reads there.
        found = re.search(
            r"simulated gateway dorm1-main: Modbus TCP on 127\.0\.0\.1:(\d+), units ([\d,]+)", "".join(head)
        )
        assert found, "".join(head)
        unit = found.group(2).split(",")[0]
        # Two raw input registers (a float's words; mbpoll's own float order is not the meter's).
        mbpoll = ["mbpoll", "-m", "tcp", "-a", unit, "-t", "3", "-r", "1", "-c", "2", "-1", "-p", found.group(1)]
        polled = subprocess.run([*mbpoll, "127.0.0.1"], capture_output=True, text=True, timeout=20)
        assert polled.returncode == 0 and re.search(r"\[2\]:\s+-?\d+", polled.stdout), polled.stdout + polled.stderr
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 60
        assert "swagger" in httpx.get(f"{url}/docs", timeout=5).text.lower()
        logins = json.loads((tmp_path / "data" / "demo" / "demo-logins.json").read_text())
        token = httpx.post(
            f"{url}/api/v1/auth/token", data={"username": "student", "password": logins["student"]}
        ).json()
        me = httpx.get(f"{url}/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
        assert me["role"] == "student" and me["rooms"] == ["D1-101"]
        # The simulated campus is being polled (main meters every 5 s, rooms every 15 s) and its MQTT
        # devices publish to the embedded broker, which houqin's MQTT link reads.
        wait_for_metric(url, r'houqin_modbus_polls_total\{gateway="dorm1-main",result="ok"\} ([0-9.]+)')
        wait_for_metric(url, r'houqin_mqtt_messages_total\{result="ok"\} ([0-9.]+)')
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        failed = re.findall(r'houqin_modbus_polls_total\{gateway="[^"]+",result="failed"\} ([0-9.]+)', metrics)
        assert failed and all(float(count) == 0 for count in failed)
        # Readings reach the embedded telemetry store and come back through the API.
        staff_token = httpx.post(
            f"{url}/api/v1/auth/token", data={"username": "staff", "password": logins["staff"]}
        ).json()["access_token"]
        staff = {"Authorization": f"Bearer {staff_token}"}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            devices = httpx.get(f"{url}/api/v1/devices", headers=staff, timeout=5).json()
            if sum(device["online"] is True for device in devices) >= 10:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"devices not online through the API: {devices[:3]}")
        student = {"Authorization": f"Bearer {token['access_token']}"}
        usage = httpx.get(f"{url}/api/v1/rooms/D1-101/usage", headers=student, timeout=5)
        assert usage.status_code == 200 and len(usage.json()["windows"]) in {23, 24, 25}
        # Fault injection from the command line, through the API, as staff.
        # No --url: the settings say where houqin listens, for this command as for the demo.
        injected = houqin("fault", "d1-101-meter", "voltage_sag", "--username", "staff", "--password-stdin",
                          cwd=tmp_path, env=env, stdin=logins["staff"] + "\n")  # fmt: skip
        assert injected.returncode == 0, injected.stderr
        assert injected.stdout.strip() == "active faults: d1-101-meter: voltage_sag"
        refused = houqin("fault", "d1-101-meter", "meteor", "--url", url, "--username", "staff",
                         "--password-stdin", cwd=tmp_path, stdin=logins["staff"] + "\n")  # fmt: skip
        assert refused.returncode == 1 and "unknown fault 'meteor'" in refused.stderr


def test_run_refuses_a_bad_inventory(tmp_path: Path) -> None:
    (tmp_path / "devices.yaml").write_text("site: {name: x}\ndevices: [{id: a}]\n")
    result = houqin("run", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    assert "devices.yaml:2: devices[0].model: required field is missing" in result.stderr


def test_run_with_influxdb_writes_the_campus_readings(influxd: Influxd, tmp_path: Path) -> None:
    env = {
        "HOUQIN_INFLUX__URL": influxd.url,
        "HOUQIN_INFLUX__API": "v1",
        "HOUQIN_INFLUX__DATABASE": "campus",
        "HOUQIN_TELEMETRY__FLUSH_SECONDS": "0.2",
    }
    with houqin_serving("run", "--simulate", "--port", "0", data=tmp_path, env=env):
        deadline = time.monotonic() + 60
        counts: dict[str, int] = {}
        while time.monotonic() < deadline and not {"electricity", "device_health", "water"} <= counts.keys():
            time.sleep(1)
            names = [row[0] for series in influxd.query("", "SHOW DATABASES") for row in series.get("values", [])]
            if "campus" not in names:
                continue  # houqin creates it as it starts
            counts = {
                series["name"]: series["values"][0][1]
                for series in influxd.query("campus", 'SELECT count("online") FROM device_health')
                + influxd.query("campus", 'SELECT count("energy") FROM electricity')
                + influxd.query("campus", "SELECT count(*) FROM water")
            }
        assert {"electricity", "device_health", "water"} <= counts.keys(), counts
        tags = influxd.query("campus", 'SHOW TAG VALUES FROM electricity WITH KEY = "room"')[0]["values"]
        assert ["room", "D1-101"] in tags
    assert not list((tmp_path / "data" / "spool").glob("*.lp"))  # everything written, nothing left behind


SMALL_SITE = """\
site: {name: 小学校 Small School}
teams:
  - {id: electrical, name: 电工班, categories: [electrical, meter]}
tariffs:
  - {id: flat, price_fen_per_kwh: 60}
gateways:
  - {id: gw1, type: modbus_tcp, host: 127.0.0.1, port: 1502}
devices:
  - {id: m1, model: eastron-sdm120, gateway: gw1, unit: 1, building: b1}
  - {id: m2, model: eastron-sdm120, gateway: gw1, unit: 2, building: b1}
rooms:
  - {id: R101, building: b1, floor: 1, meter: m1, tariff: flat}
  - {id: R102, building: b1, floor: 1, meter: m2, tariff: flat}
"""


def test_a_small_site_with_one_team_starts_and_lists_the_rules_it_does_not_use(tmp_path: Path) -> None:
    """Shipped rules for lighting, water and broadcast watch none of a meters-only site's devices: inactive,
    named by check, never an error. A meter rule whose category no team owns still is one."""
    (tmp_path / "devices.yaml").write_text(SMALL_SITE)
    result = houqin("check", "devices.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    inactive = re.search(r"inactive \(watch no device of this site\): (.*)", result.stdout)
    assert inactive, result.stdout
    names = set(inactive.group(1).split(", "))
    assert {"water-meter-offline", "lighting-offline", "night-water-flow", "lamp-failure"} <= names, names
    assert not names & {"meter-offline", "meter-stuck", "low-voltage"}, names  # these watch m1 and m2
    # The meter rules open "meter" orders: with no team owning meters, that is the one error.
    (tmp_path / "devices.yaml").write_text(SMALL_SITE.replace("categories: [electrical, meter]",
                                                              "categories: [electrical]"))  # fmt: skip
    refused = houqin("check", "devices.yaml", cwd=tmp_path)
    assert refused.returncode == 1 and "no team owns 'meter'" in refused.stderr, refused.stderr
    assert "no team owns 'lighting'" not in refused.stderr and "'plumbing'" not in refused.stderr


def test_the_inventory_s_timezone_is_the_campus_clock_and_a_disagreement_is_refused(tmp_path: Path) -> None:
    london = SMALL_SITE.replace(
        "site: {name: 小学校 Small School}", "site: {name: 小学校 Small School, timezone: Europe/London}"
    )
    (tmp_path / "devices.yaml").write_text(london)
    env = {"HOUQIN_INVENTORY": "devices.yaml", "HOUQIN_DATA_DIR": str(tmp_path / "data")}
    refused = houqin("run", cwd=tmp_path, env=env | {"HOUQIN_TIMEZONE": "Asia/Shanghai"})
    assert refused.returncode == 1
    assert "'Europe/London'" in refused.stderr and "'Asia/Shanghai'" in refused.stderr, refused.stderr


async def test_the_api_counts_days_in_the_inventory_s_timezone(tmp_path: Path) -> None:
    from houqin.inventory import load_inventory
    from houqin.settings import Settings
    from houqin.store import Database, upgrade_database
    from houqin.telemetry.embedded_store import EmbeddedStore
    from tests.conftest import in_process_api

    london = SMALL_SITE.replace(
        "site: {name: 小学校 Small School}", "site: {name: 小学校 Small School, timezone: Europe/London}"
    )
    (tmp_path / "devices.yaml").write_text(london)
    inventory = load_inventory(tmp_path / "devices.yaml")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.db'}")
    await upgrade_database(database)
    store = EmbeddedStore(tmp_path / "telemetry.sqlite3", Settings().telemetry)
    await store.open()
    try:
        async with in_process_api(Settings(data_dir=tmp_path), inventory, database, store) as http:
            from houqin.accounts import NewAccount, add_account
            from houqin.store.tables import Role

            async with database.session() as session:
                await add_account(session, NewAccount("li", Role.STAFF, "a-long-password-1"), inventory)
                await session.commit()
            token = (
                await http.post("/api/v1/auth/token", data={"username": "li", "password": "a-long-password-1"})
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            assert (await http.get("/api/v1/site", headers=headers)).json()["timezone"] == "Europe/London"
            usage = (await http.get("/api/v1/rooms/R101/usage", params={"date": "2026-07-01"}, headers=headers)).json()
            assert usage["windows"][0]["start"] == "2026-06-30T23:00:00Z"  # London midnight in summer time
    finally:
        await store.close()
        await database.close()


def test_sqlite_serves_one_process_and_roles_are_checked(tmp_path: Path) -> None:
    """A second ``houqin run`` on the same SQLite file is refused, naming the process that holds it (several
    processes need PostgreSQL); an unknown role is named with the valid ones; an API-only process serves."""
    (tmp_path / "devices.yaml").write_text(SMALL_SITE)
    env = {"HOUQIN_INVENTORY": str(tmp_path / "devices.yaml")}
    bad = houqin("run", "--role", "api,nonsense", cwd=tmp_path, env=env)
    assert bad.returncode != 0
    assert "--role: unknown role 'nonsense': the roles are api, collect, rules, billing, scheduler" in bad.stderr
    with houqin_serving("run", "--port", "0", "--role", "api,rules", data=tmp_path, env=env, pipe_stderr=True) as first:
        url = served_url(first)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        second = houqin("run", "--port", "0", cwd=tmp_path, env={**env, "HOUQIN_DATA_DIR": str(tmp_path / "data")})
        assert second.returncode != 0
        assert f"another houqin process (pid {first.pid}) runs on this SQLite database" in second.stderr, second.stderr
        assert "PostgreSQL" in second.stderr
    # Once the first has stopped, the file is free again.
    with houqin_serving("run", "--port", "0", data=tmp_path, env=env, pipe_stderr=True) as again:
        assert served_url(again).startswith("http://127.0.0.1:")
