"""Payment providers behind one interface: each says how a client pays an order (``checkout``), verifies
the provider's notification that it was paid (``verify``) and answers it the way that provider expects
(``answer``); the payment desk does the rest (the order, the unique key, the credit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from houqin.store.tables import PaymentOrder

MAX_ORDER_ID = 2**63 - 1  # a database row id (BIGINT)


class NotificationRejected(Exception):  # noqa: N818 - reads as what happened
    """A notification that is not genuine, or does not match its order: nothing was changed."""


@dataclass(frozen=True)
class VerifiedNotification:
    """What a genuine notification says. ``paid`` is False for the notifications that report something
    else (a trade created or closed): they are answered as received and credit nothing."""

    order_id: int
    trade_no: str  # the provider's own transaction number: the notification's identity
    amount_fen: int
    room: str | None  # the room the payer paid for, when the provider carries it back
    body: str
    paid: bool = True

    def __post_init__(self) -> None:
        # Signed, but naming no order houqin could have made (an id past a database row's range).
        if not 1 <= self.order_id <= MAX_ORDER_ID:
            raise NotificationRejected(f"notification for order {self.order_id}: no such order")
        if not 0 < self.amount_fen <= MAX_ORDER_ID:
            raise NotificationRejected(f"notification for {self.amount_fen} fen: not an amount")


@dataclass(frozen=True)
class NotifyAnswer:
    status: int
    body: bytes
    media_type: str


class PaymentProvider(Protocol):
    @property
    def name(self) -> str: ...

    async def checkout(self, order: PaymentOrder) -> dict[str, str]:
        """What the client needs to pay the order."""
        ...

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> VerifiedNotification:
        """The notification, if genuine (``headers`` with lower-case names); raises ``NotificationRejected``."""
        ...

    def answer(self, error: str | None, credited: bool) -> NotifyAnswer:
        """The reply the provider expects: ``error`` None means received (stop resending)."""
        ...


def order_reference(order_id: int) -> str:
    """The merchant's order number houqin gives a provider (``out_trade_no``)."""
    return f"HQ{order_id:012d}"


def order_from_reference(reference: str) -> int:
    if not (reference.startswith("HQ") and reference[2:].isdigit()):
        raise NotificationRejected(f"order number {reference!r} is not one of houqin's")
    return int(reference[2:])


def checked(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise NotificationRejected(f"notification without {what}")
    return value
