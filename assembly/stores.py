"""The stores a process opens: the SQL database and the telemetry store, and the readiness checks on them."""

from __future__ import annotations

from pathlib import Path

from houqin.readiness import Readiness, influx_check, mqtt_broker_check
from houqin.settings import Settings
from houqin.store import Database, current_revision, head_revision, upgrade_database
from houqin.telemetry import TelemetryStore
from houqin.telemetry.embedded_store import EmbeddedStore
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.spool import Spool


class SchemaBehindError(RuntimeError):
    """PostgreSQL's schema is not the one this houqin needs; the operator upgrades it."""


def configured_database(settings: Settings) -> Database:
    """The configured store, not yet opened or upgraded."""
    return Database(settings.effective_database_url, pool_size=settings.database_pool_size)


async def open_database(settings: Settings) -> Database:
    """Open the store; SQLite is upgraded in place, PostgreSQL must have been upgraded by the operator."""
    database = configured_database(settings)
    if database.is_sqlite:
        await upgrade_database(database)
        return database
    current, head = await current_revision(database), head_revision()
    if current != head:
        await database.close()
        raise SchemaBehindError(
            f"database schema is at {current or 'nothing'}, houqin needs {head}: run `houqin db upgrade`"
        )
    return database


def telemetry_store(settings: Settings) -> TelemetryStore:
    """Where readings go: InfluxDB (with its spool) when configured, the embedded SQLite store otherwise."""
    if settings.influx.embedded:
        return EmbeddedStore(settings.data_dir / "telemetry.sqlite3", settings.telemetry, timezone=settings.tz)
    spool = Spool(settings.data_dir / "spool", settings.telemetry.spool_max_bytes)
    return InfluxStore(settings.influx, settings.telemetry, spool)


def readiness_checks(settings: Settings, database: Database) -> Readiness:
    readiness = Readiness()
    readiness.add("database", database.ping)
    if not settings.mqtt_embedded:
        readiness.add("mqtt_broker", mqtt_broker_check(settings.mqtt_url))
    if not settings.influx.embedded:
        readiness.add("influxdb", influx_check(settings.influx))
    return readiness


def sqlite_file(url: str) -> Path:
    """The file of a ``sqlite+aiosqlite:///…`` URL."""
    return Path(url.split(":///", 1)[1].split("?", 1)[0])
