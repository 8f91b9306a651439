"""Top-ups and payment notifications.

``POST /api/v1/rooms/{room}/topups`` (a room's student, staff, admin) creates a payment order; the
``Idempotency-Key`` header makes a retry return the same order (a different body under the same key is a
409). With the ``campus_card`` method a cashier (or admin) records a payment taken at the counter, and
the room is credited at once. ``POST /api/v1/payments/{provider}/notify`` is called by the provider, not
by users: it is authenticated by the provider's signature, answered in the provider's own format, and a
duplicate is answered as a success that credits nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from api.deps import AccessibleRoom, CurrentUser, InventoryDep, PaymentDeskDep, SessionDep
from api.request_body import body_within
from api.schemas import CheckoutOut, TopupIn, TopupOut
from houqin.billing.desk import COUNTER, OrderConflict, PaymentDesk
from houqin.billing.providers import NotificationRejected
from houqin.billing.providers.wechat import CheckoutFailed
from houqin.inventory.model import Room, Tariff
from houqin.store.tables import PaymentOrder, Role, User

router = APIRouter(prefix="/api/v1", tags=["payments"])

MAX_NOTIFICATION_BYTES = 64 << 10  # the providers' notifications are a few KiB


@router.post(
    "/rooms/{room_id}/topups",
    response_model=CheckoutOut,
    status_code=status.HTTP_201_CREATED,
    summary="Start a top-up (the room's student, staff): returns what the client needs to pay",
)
async def create_topup(
    room: AccessibleRoom,
    body: TopupIn,
    user: CurrentUser,
    inventory: InventoryDep,
    desk: PaymentDeskDep,
    idempotency_key: Annotated[str, Header(min_length=8, max_length=100)],
) -> CheckoutOut:
    if body.provider == COUNTER and desk.counter:
        return await _pay_at_counter(desk, room, inventory.tariffs[room.tariff], body, user, idempotency_key)
    if user.role == Role.CASHIER:
        # A cashier records what was paid at the counter; an online order is the payer's own (or staff's).
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a cashier records {COUNTER} top-ups, not online orders")
    provider = desk.providers.get(body.provider)
    if provider is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"payment method {body.provider!r} is not enabled here; one of "
                            f"{', '.join(desk.methods) or 'none'}")  # fmt: skip
    _check_amount(inventory.tariffs[room.tariff], body.amount_fen)
    try:
        order = await desk.open_order(user.username, room.id, body.provider, body.amount_fen, idempotency_key,
                                      datetime.now(UTC))  # fmt: skip
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    try:
        checkout = await provider.checkout(order)
    except CheckoutFailed as exc:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(exc)) from None
    return CheckoutOut(order=TopupOut.model_validate(order, from_attributes=True), checkout=checkout)


def _check_amount(tariff: Tariff, amount_fen: int) -> None:
    if not tariff.min_topup_fen <= amount_fen <= tariff.max_topup_fen:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"a top-up is {tariff.min_topup_fen} to {tariff.max_topup_fen} fen")  # fmt: skip


async def _pay_at_counter(
    desk: PaymentDesk, room: Room, tariff: Tariff, body: TopupIn, user: User, key: str
) -> CheckoutOut:
    if user.role not in {Role.CASHIER, Role.ADMIN}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "campus card top-ups are recorded by a cashier")
    _check_amount(tariff, body.amount_fen)
    try:
        order = await desk.pay_at_counter(user.username, room.id, body.amount_fen, key, datetime.now(UTC))
    except OrderConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return CheckoutOut(order=TopupOut.model_validate(order, from_attributes=True),
                       checkout={"paid_at": "counter", "cashier": user.username})  # fmt: skip


@router.get("/rooms/{room_id}/topups", response_model=list[TopupOut], summary="A room's top-ups")
async def list_topups(room: AccessibleRoom, session: SessionDep) -> list[TopupOut]:
    query = select(PaymentOrder).where(PaymentOrder.room == room.id).order_by(PaymentOrder.id.desc()).limit(200)
    return [TopupOut.model_validate(order, from_attributes=True) for order in (await session.execute(query)).scalars()]


# Each provider is answered in its own format (Alipay: the text "success"/"fail"; WeChat Pay: a JSON code and
# message), so these answers are not houqin's error shape.
_PROVIDER_ANSWER = {
    "description": "the answer in the provider's own format",
    "content": {"application/json": {"schema": {"type": "object"}}, "text/plain": {"schema": {"type": "string"}}},
}


@router.post(
    "/payments/{provider}/notify",
    summary="A payment provider's notification (the provider, signed)",
    responses={200: _PROVIDER_ANSWER, "4XX": _PROVIDER_ANSWER},
)
async def notify(provider: str, request: Request, desk: PaymentDeskDep) -> Response:
    if provider not in desk.providers:
        return JSONResponse({"code": "FAIL", "message": f"no provider {provider!r}"}, status.HTTP_404_NOT_FOUND)
    body = await body_within(request, MAX_NOTIFICATION_BYTES, "a payment notification")
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        credited = await desk.apply(provider, headers, body, datetime.now(UTC))
    except NotificationRejected as exc:
        answer = desk.providers[provider].answer(str(exc), False)
    else:
        answer = desk.providers[provider].answer(None, credited)
    return Response(answer.body, answer.status, media_type=answer.media_type)
