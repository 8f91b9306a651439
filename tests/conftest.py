"""Fixtures: real servers (started once per run), fresh databases on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from assembly import ProcessRole, assemble
from houqin.accounts import NewAccount, add_account
from houqin.inventory import Inventory, load_inventory
from houqin.settings import Settings, TelemetrySettings
from houqin.store import Database, upgrade_database
from houqin.store.tables import Role
from houqin.telemetry import TelemetryStore
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import PASSWORD
from tests.servers import Influxd, Mosquitto, Postgres, influxd_server, mosquitto_server, postgres_server, stop_all

ROOT = Path(__file__).resolve().parent.parent
DEMO_INVENTORY = ROOT / "devices.yaml"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[Mosquitto]:
    with mosquitto_server() as server:
        yield server


@pytest.fixture(scope="session")
def influxd() -> Iterator[Influxd]:
    with influxd_server() as server:
        yield server


@pytest.fixture(scope="session")
def demo_inventory() -> Inventory:
    return load_inventory(DEMO_INVENTORY)


async def create_pg_database(server: Postgres) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(host=server.host, port=server.port, user=server.user, database="postgres")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return server.url(name)


@pytest.fixture
async def shared(postgres: Postgres) -> AsyncIterator[tuple[Database, str]]:
    """A fresh PostgreSQL database for processes to share, migrated, and its URL."""
    url = await create_pg_database(postgres)
    database = Database(url)
    await upgrade_database(database)
    yield database, url
    await database.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: every store test runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'houqin.db'}"
    server: Postgres = request.getfixturevalue("postgres")
    return await create_pg_database(server)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """An upgraded database on both back ends."""
    db = Database(database_url)
    await upgrade_database(db)
    yield db
    await db.close()


@pytest.fixture
async def telemetry(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    store = EmbeddedStore(tmp_path / "telemetry.sqlite3", TelemetrySettings(), timezone=ZoneInfo("Asia/Shanghai"))
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(  # the API in process, with a student in D1-101 (alice) and D1-102 (bob), a worker, staff, a cashier
    database: Database, demo_inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with database.session() as session:
        for account in (
            NewAccount("alice", Role.STUDENT, PASSWORD, ("D1-101",)),
            NewAccount("bob", Role.STUDENT, PASSWORD, ("D1-102",)),
            NewAccount("wang", Role.WORKER, PASSWORD, team="electrical"),
            NewAccount("li", Role.STAFF, PASSWORD),
            NewAccount("zhao", Role.CASHIER, PASSWORD),
            NewAccount("root", Role.ADMIN, PASSWORD),
        ):
            await add_account(session, account, demo_inventory)
        await session.commit()
    async with in_process_api(Settings(data_dir=tmp_path), demo_inventory, database, telemetry) as http:
        yield http


@contextlib.asynccontextmanager
async def in_process_api(
    settings: Settings, inventory: Inventory, database: Database, telemetry: TelemetryStore
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of houqin's API as the assembly builds it for a process of the api role, on the test's own
    stores, called in process (not listening)."""
    async with (
        assemble(settings, inventory, roles={ProcessRole.API}, listen=False, database=database,
                 telemetry=telemetry) as houqin,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=houqin.app), base_url="http://houqin") as http,
    ):  # fmt: skip
        yield http


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Real houqin processes a test starts: whatever still runs at its end is stopped (SIGTERM, then killed)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    stop_all(started)
