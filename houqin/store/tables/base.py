"""What every table shares: the declarative base with named constraints, UTC times, and states stored as
strings that the code reads as ``StrEnum`` members."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import DateTime, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

# Named constraints so that migrations can alter them on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on both back ends (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a stored time must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


S = TypeVar("S", bound=StrEnum)


class StateColumn(TypeDecorator[S]):
    """A state or kind stored as its string (no database enum: a new state needs no migration), read back as
    the ``StrEnum`` member. Writing a string that is no member is a bug, refused before it reaches the row;
    reading one gives the plain string."""

    impl = String
    cache_ok = True

    def __init__(self, states: type[S], length: int = 16) -> None:
        super().__init__(length)
        self.states = states

    def process_bind_param(self, value: S | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.states(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> S | None:
        if value is None:
            return None
        try:
            return self.states(value)
        except ValueError:
            # A state this houqin does not know (written by a newer version during a rolling upgrade, or by
            # hand) is read as the string it is: a row must never make a page or a loop fail to load.
            return value  # type: ignore[return-value]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
