"""Top-ups: what a user asked to pay, and the providers' verified notifications that credit it once."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from houqin.store.tables.base import Base, StateColumn, UtcDateTime, utcnow


class PaymentState(StrEnum):
    CREATED = "created"
    PAID = "paid"
    REJECTED = "rejected"


class PaymentOrder(Base):
    """A top-up a user asked for: created, then paid when the provider's verified notification arrives."""

    __tablename__ = "payment_orders"
    __table_args__ = (UniqueConstraint("requested_by", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room: Mapped[str] = mapped_column(String(64), index=True)
    provider: Mapped[str] = mapped_column(String(16))
    amount_fen: Mapped[int] = mapped_column(Integer)
    state: Mapped[PaymentState] = mapped_column(StateColumn(PaymentState))
    requested_by: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(100))
    provider_trade_no: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class PaymentNotification(Base):
    """A verified notification from a payment provider, kept under its unique key in the transaction that
    credits the wallet: a replay or a concurrent duplicate finds it and credits nothing."""

    __tablename__ = "payment_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # provider:trade number
    order_id: Mapped[int] = mapped_column(ForeignKey("payment_orders.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    body: Mapped[str] = mapped_column(Text)
