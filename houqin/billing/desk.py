"""The payment desk: top-up orders (idempotent per user and key), the providers that say how to pay
them, and notifications that are verified, stored under a unique key and applied exactly once, in the
transaction that credits the wallet.

Providers resend a notification until it is answered, and may send it twice at once. A notification whose
key is already stored is a success that credits nothing; one whose amount or room does not match its
order is rejected and logged as an alert; one that does not verify changes nothing. A genuine notification
that reports no payment (a trade created or closed) is received and credits nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.billing.policy import PowerPolicy
from houqin.billing.providers import NotificationRejected, PaymentProvider
from houqin.store import Database
from houqin.store.keyed import insert_unless_keyed, upsert_for
from houqin.store.tables import EntryKind, PaymentNotification, PaymentOrder, PaymentState

log = logging.getLogger(__name__)

COUNTER = "campus_card"  # paid at the cashier's counter: credited by the cashier, no notification


_ORDERS: Table = PaymentOrder.__table__  # type: ignore[assignment]
_NOTIFICATIONS: Table = PaymentNotification.__table__  # type: ignore[assignment]
# Core statements on the tables, built once (a notification's path runs them all; see ledger.py).
_ORDER = select(_ORDERS.c.room, _ORDERS.c.provider, _ORDERS.c.amount_fen).where(_ORDERS.c.id == bindparam("order_id"))
_STORE = insert_unless_keyed(_NOTIFICATIONS)
_PAID = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("paid_order"))
    .values(state=PaymentState.PAID, paid_at=bindparam("paid_time"), provider_trade_no=bindparam("trade"))
)


class OrderConflict(Exception):  # noqa: N818 - reads as what happened
    """The same idempotency key was used for a different top-up."""


class PaymentDesk:
    def __init__(
        self, database: Database, policy: PowerPolicy, providers: dict[str, PaymentProvider], counter: bool = True
    ) -> None:
        self.database = database
        self.policy = policy
        self.providers = providers
        self.counter = counter

    @property
    def methods(self) -> list[str]:
        return sorted([*self.providers, *([COUNTER] if self.counter else [])])

    async def apply(self, provider: str, headers: dict[str, str], body: bytes, now: datetime) -> bool:
        """Verify and apply a notification; True when it credited the wallet, False when it had been
        applied before or reports no payment. Raises ``NotificationRejected`` (nothing changed)."""
        verified = self.providers[provider].verify(headers, body, now)
        order_id = verified.order_id
        async with self.database.session() as session:
            connection = await session.connection()
            order = (await connection.execute(_ORDER, {"order_id": order_id})).first()
            if order is None or order.provider != provider:
                raise NotificationRejected(f"{provider} notification for unknown order {order_id}")
            room_differs = verified.room is not None and verified.room != order.room
            if order.amount_fen != verified.amount_fen or room_differs:
                log.error("ALERT: %s notification %s does not match order %d (%d fen for %s; paid %d fen for %s)",
                          provider, verified.trade_no, order_id, order.amount_fen, order.room, verified.amount_fen,
                          verified.room)  # fmt: skip
                raise NotificationRejected("amount or room does not match the order")
            if not verified.paid:
                log.info("%s notification %s for order %d reports no payment", provider, verified.trade_no, order_id)
                return False
            stored = await connection.execute(_STORE[connection.dialect.name], {
                "key": f"{provider}:{verified.trade_no}", "order_id": order_id, "amount_fen": verified.amount_fen,
                "received_at": now, "body": verified.body})  # fmt: skip
            if stored.scalar() is None:
                await session.rollback()
                return False  # applied before (or by a concurrent duplicate that committed first)
            await connection.execute(_PAID, {"paid_order": order_id, "paid_time": now, "trade": verified.trade_no})
            entry = await self.policy.post(session, order.room, EntryKind.TOPUP, order.amount_fen, now,
                                           key=f"payment:{order_id}", cause=f"{provider} {verified.trade_no}",
                                           note=f"order {order_id}")  # fmt: skip
            if entry is None:
                log.error("ALERT: order %d was paid again (%s %s): not credited twice; refund the payer",
                          order_id, provider, verified.trade_no)  # fmt: skip
            await session.commit()
            return entry is not None

    async def open_order(
        self, requested_by: str, room: str, provider: str, amount_fen: int, key: str, now: datetime
    ) -> PaymentOrder:
        """The order under the requester's idempotency key: made now, or the one made before with the same
        key (also by a request still in flight: the database's unique key makes it wait and see that one).
        Raises ``OrderConflict`` when the key was used for a different top-up. One connection, one
        transaction."""
        async with self.database.session() as session:
            order_id = await self._claim(session, requested_by, room, provider, amount_fen, key, now,
                                         PaymentState.CREATED)  # fmt: skip
            if order_id is None:
                order = await self._existing(session, requested_by, room, provider, amount_fen, key)
                return order  # closing the session ends its transaction and keeps the order readable
            await session.commit()
            return await self._order(session, order_id)

    async def pay_at_counter(
        self, cashier: str, room: str, amount_fen: int, key: str, now: datetime, note: str = ""
    ) -> PaymentOrder:
        """A top-up paid at the counter (campus card or cash): the order is paid and the wallet credited
        in one transaction, under the cashier's idempotency key; a retry returns the same order."""
        async with self.database.session() as session:
            order_id = await self._claim(session, cashier, room, COUNTER, amount_fen, key, now, PaymentState.PAID)
            if order_id is None:
                order = await self._existing(session, cashier, room, COUNTER, amount_fen, key)
                return order  # closing the session ends its transaction and keeps the order readable
            trade_no = f"COUNTER{order_id:010d}"
            await session.execute(update(PaymentOrder).where(PaymentOrder.id == order_id)
                                  .values(provider_trade_no=trade_no))  # fmt: skip
            await self.policy.post(session, room, EntryKind.TOPUP, amount_fen, now, key=f"payment:{order_id}",
                                   cause=f"{COUNTER}:{cashier}", note=note or f"order {order_id}")  # fmt: skip
            await session.commit()
            log.info("room %s: %d fen paid at the counter (%s, order %d)", room, amount_fen, cashier, order_id)
            return await self._order(session, order_id)

    async def _claim(
        self, session: AsyncSession, requested_by: str, room: str, provider: str, amount_fen: int, key: str,
        now: datetime, state: PaymentState,
    ) -> int | None:  # fmt: skip
        """Insert the order under its key; None when the key holds an order already (``_existing`` says
        whether it is this top-up)."""
        paid_at = now if state == PaymentState.PAID else None
        made = upsert_for(session)(PaymentOrder).values(
            room=room, provider=provider, amount_fen=amount_fen, state=state, requested_by=requested_by,
            idempotency_key=key, created_at=now, paid_at=paid_at)  # fmt: skip
        made = made.on_conflict_do_nothing(index_elements=["requested_by", "idempotency_key"])
        order_id: int | None = (await session.execute(made.returning(PaymentOrder.id))).scalar()
        return order_id

    @staticmethod
    async def _existing(
        session: AsyncSession, requested_by: str, room: str, provider: str, amount_fen: int, key: str
    ) -> PaymentOrder:
        query = select(PaymentOrder).where(PaymentOrder.requested_by == requested_by,
                                           PaymentOrder.idempotency_key == key)  # fmt: skip
        order = (await session.execute(query)).scalar_one()
        if (order.room, order.amount_fen, order.provider) != (room, amount_fen, provider):
            raise OrderConflict("this Idempotency-Key was used for a different top-up")
        return order

    @staticmethod
    async def _order(session: AsyncSession, order_id: int) -> PaymentOrder:
        return (await session.execute(select(PaymentOrder).where(PaymentOrder.id == order_id))).scalar_one()
