"""Alembic migrations run from code: ``houqin db upgrade`` and the SQLite upgrade on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from houqin.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def current_revision(database: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(read)


async def upgrade_database(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction (PostgreSQL rolls back a failed step)."""

    def upgrade(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(upgrade)
