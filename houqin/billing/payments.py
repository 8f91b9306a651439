"""Top-ups through payment providers: an order per request (idempotent per user and key), a provider that
says how to pay it, and notifications that are verified, stored under a unique key and applied exactly
once, in the transaction that credits the wallet.

Providers resend a notification until it is answered, and may send it twice at once. A notification whose
key is already stored is a success that credits nothing; one whose amount or room does not match its
order is rejected and logged as an alert; one that does not verify changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import select

from houqin.billing.ledger import post, upsert_for
from houqin.billing.policy import PowerPolicy
from houqin.store import Database
from houqin.store.tables import PaymentNotification, PaymentOrder

log = logging.getLogger(__name__)


class NotificationRejected(Exception):  # noqa: N818 - reads as what happened
    """A notification that is not genuine, or does not match its order: nothing was changed."""


@dataclass(frozen=True)
class VerifiedNotification:
    order_id: int
    trade_no: str  # the provider's own transaction number: the notification's identity
    amount_fen: int
    room: str
    body: str


class PaymentProvider(Protocol):
    @property
    def name(self) -> str: ...

    def checkout(self, order: PaymentOrder) -> dict[str, Any]:
        """What the client needs to pay the order."""
        ...

    def verify(self, headers: dict[str, str], body: bytes) -> VerifiedNotification:
        """The notification, if genuine; raises ``NotificationRejected``."""
        ...


class SandboxProvider:
    """A provider for the demo and the tests: it "pays at once" by handing the client a notification
    signed with a key only this houqin knows (HMAC-SHA256), which the client posts to the notify URL as
    a real provider would. Never enable it where money is real: whoever tops up gets the credit."""

    name = "sandbox"

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, body: bytes) -> str:
        return base64.b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode()

    def checkout(self, order: PaymentOrder) -> dict[str, Any]:
        body = orjson.dumps({"order_id": order.id, "trade_no": f"SANDBOX{order.id:010d}",
                             "amount_fen": order.amount_fen, "room": order.room})  # fmt: skip
        return {
            "notify_url": "/api/v1/payments/sandbox/notify",
            "notification": body.decode(),
            "signature": self.sign(body),
        }

    def verify(self, headers: dict[str, str], body: bytes) -> VerifiedNotification:
        signature = headers.get("x-sandbox-signature", "")
        if not hmac.compare_digest(signature, self.sign(body)):
            raise NotificationRejected("sandbox notification: bad signature")
        try:
            data = orjson.loads(body)
            return VerifiedNotification(int(data["order_id"]), str(data["trade_no"]), int(data["amount_fen"]),
                                        str(data["room"]), body.decode())  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise NotificationRejected(f"sandbox notification: malformed ({exc})") from None


class PaymentDesk:
    def __init__(self, database: Database, policy: PowerPolicy, providers: dict[str, PaymentProvider]) -> None:
        self.database = database
        self.policy = policy
        self.providers = providers

    async def apply(self, provider: str, headers: dict[str, str], body: bytes, now: datetime) -> bool:
        """Verify and apply a notification; True when it credited the wallet, False when it had been
        applied before. Raises ``NotificationRejected`` (nothing changed)."""
        verified = self.providers[provider].verify(headers, body)
        async with self.database.session() as session:
            order = await session.get(PaymentOrder, verified.order_id, with_for_update=True)
            if order is None or order.provider != provider:
                raise NotificationRejected(f"{provider} notification for unknown order {verified.order_id}")
            if order.amount_fen != verified.amount_fen or order.room != verified.room:
                log.error("ALERT: %s notification %s does not match order %d (%d fen for %s; paid %d fen for %s)",
                          provider, verified.trade_no, order.id, order.amount_fen, order.room, verified.amount_fen,
                          verified.room)  # fmt: skip
                raise NotificationRejected("amount or room does not match the order")
            key = f"{provider}:{verified.trade_no}"
            stored = upsert_for(session)(PaymentNotification).values(
                key=key, order_id=order.id, amount_fen=verified.amount_fen, received_at=now, body=verified.body
            )
            stored_id = await session.execute(stored.on_conflict_do_nothing(index_elements=["key"]).returning(
                PaymentNotification.id))  # fmt: skip
            if stored_id.scalar() is None:
                await session.rollback()
                return False  # applied before (or by a concurrent duplicate that committed first)
            order.state, order.paid_at, order.provider_trade_no = "paid", now, verified.trade_no
            entry = await post(session, order.room, "topup", order.amount_fen, now, key=f"payment:{order.id}",
                               cause=f"{provider} {verified.trade_no}", note=f"order {order.id}")  # fmt: skip
            if entry is not None:
                await self.policy.after(session, order.room, entry, now)
            await session.commit()
            return entry is not None

    async def order_for(self, requested_by: str, key: str) -> PaymentOrder | None:
        async with self.database.session() as session:
            query = select(PaymentOrder).where(PaymentOrder.requested_by == requested_by,
                                               PaymentOrder.idempotency_key == key)  # fmt: skip
            return (await session.execute(query)).scalar()
