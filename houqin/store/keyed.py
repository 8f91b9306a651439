"""Rows written once under a unique key, on SQLite and PostgreSQL alike: ``INSERT … ON CONFLICT DO
NOTHING``, which both know, so that a second writer of the same key (a retried notification, a
scheduler restarted mid-second) finds the row there and writes nothing."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert


def upsert_for(session: AsyncSession):  # type: ignore[no-untyped-def]
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL alike)."""
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def insert_unless_keyed(table: Table, returning: str = "id") -> dict[str, ReturningInsert[tuple[object]]]:
    """``INSERT … ON CONFLICT (key) DO NOTHING RETURNING <returning>`` on ``table``, built once per
    dialect: the column's value, or nothing when a row with that key exists."""
    column = table.c[returning]
    return {name: dialect_insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(column)
            for name, dialect_insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))}  # fmt: skip
