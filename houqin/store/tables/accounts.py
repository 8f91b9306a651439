"""Accounts: who signs in, with which role, and the rooms a student belongs to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class Role(StrEnum):
    STUDENT = "student"
    WORKER = "worker"
    STAFF = "staff"
    CASHIER = "cashier"  # takes payments at the counter (campus card, cash) and credits rooms
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[Role] = mapped_column(StateColumn(Role))
    team: Mapped[str | None] = mapped_column(String(64), default=None)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on a password change: tokens issued before it stop working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    rooms: Mapped[list[UserRoom]] = relationship(
        back_populates="user", cascade="all, delete-orphan", lazy="selectin", order_by="UserRoom.room_id"
    )

    @property
    def room_ids(self) -> list[str]:
        return [link.room_id for link in self.rooms]


class UserRoom(Base):
    """A student (or parent) linked to a dorm room from the inventory."""

    __tablename__ = "user_rooms"
    __table_args__ = (UniqueConstraint("user_id", "room_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    room_id: Mapped[str] = mapped_column(String(64), index=True)

    user: Mapped[User] = relationship(back_populates="rooms")
