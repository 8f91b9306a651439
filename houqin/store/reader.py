"""A read-only PostgreSQL role for dashboards: every table of houqin's may be read except the secrets of
the accounts (password hashes, token versions), of which only who a user is may be read (a per-worker
panel names the worker)."""

from __future__ import annotations

import re

from sqlalchemy import text

from houqin.store.database import Database
from houqin.store.tables import Base, User

# Columns of ``users`` a reader may see; the rest (password_hash, token_version) stay with houqin.
USER_COLUMNS = ("id", "username", "display_name", "role", "team", "active")
_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")


async def grant_reader(database: Database, role: str) -> list[str]:
    """Grant ``role`` (which must exist) read access as above; idempotent, and run again after an upgrade so
    new tables are readable. Returns the tables granted in full."""
    if database.is_sqlite:
        raise ValueError("a reader role is a PostgreSQL feature; Grafana's SQL panels need PostgreSQL")
    if not _ROLE.fullmatch(role):
        raise ValueError(f"role {role!r}: use lower-case letters, digits and underscores")
    tables = sorted(name for name in Base.metadata.tables if name != User.__tablename__)
    async with database.engine.begin() as connection:
        exists = await connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
        if exists.scalar() is None:
            raise ValueError(f"no PostgreSQL role {role!r}: create it first (CREATE ROLE {role} LOGIN PASSWORD ...)")
        database_name = (database.url.database or "postgres").replace('"', '""')
        await connection.execute(text(f'GRANT CONNECT ON DATABASE "{database_name}" TO {role}'))
        await connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {role}"))
        await connection.execute(text(f"GRANT SELECT ON {', '.join(tables)} TO {role}"))
        await connection.execute(text(f"REVOKE ALL ON {User.__tablename__} FROM {role}"))
        columns = ", ".join(USER_COLUMNS)
        await connection.execute(text(f"GRANT SELECT ({columns}) ON {User.__tablename__} TO {role}"))
    return tables
