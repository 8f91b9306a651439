"""Alipay: a top-up is paid on Alipay's mobile checkout page (``alipay.trade.wap.pay``), reached through a
gateway URL that houqin signs with the merchant's application key; Alipay then posts an asynchronous
notification (a form) to the notify URL.

A request is signed over every parameter but ``sign`` (``sign_type`` is signed). The notification is
genuine when its RSA2 signature (SHA256withRSA, with Alipay's public key) verifies over every other
parameter except ``sign`` and ``sign_type``, sorted by name, as ``name=value`` joined by
``&`` with the values decoded. Then it must be for this application and this seller, and the order's
number, amount and room are checked by the payment desk. Alipay resends for about a day until the answer
is exactly ``success``; anything else ("fail" here) makes it try again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl, quote, unquote, urlencode
from zoneinfo import ZoneInfo

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa

from houqin.billing.providers import (
    NotificationRejected,
    NotifyAnswer,
    VerifiedNotification,
    checked,
    order_from_reference,
    order_reference,
)
from houqin.billing.providers.rsa_keys import sign, verified
from houqin.store.tables import PaymentOrder

PAID = {"TRADE_SUCCESS", "TRADE_FINISHED"}  # FINISHED alone when the product allows no refunds
BEIJING = ZoneInfo("Asia/Shanghai")  # Alipay's timestamps are Beijing time


@dataclass(frozen=True)
class AlipayAccount:
    app_id: str
    seller_id: str  # the merchant's user id (2088…); checked against the notification when set
    app_private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey
    gateway: str
    notify_url: str


def _content(params: dict[str, str], leave_out: set[str]) -> bytes:
    content = "&".join(f"{name}={params[name]}" for name in sorted(params)
                       if name not in leave_out and params[name] != "")  # fmt: skip
    return content.encode()


def request_signing_string(params: dict[str, str]) -> bytes:
    """What houqin signs in a request to Alipay: every parameter but ``sign`` — ``sign_type`` included, as
    Alipay's gateway and its SDKs compute it."""
    return _content(params, {"sign"})


def notification_signing_string(params: dict[str, str]) -> bytes:
    """What Alipay signs in an asynchronous notification: every parameter but ``sign`` and ``sign_type``."""
    return _content(params, {"sign", "sign_type"})


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fen_of(amount: str) -> int:
    try:
        value = Decimal(amount) * 100
    except InvalidOperation:
        raise NotificationRejected(f"alipay notification: amount {amount!r} is not a number") from None
    if value != value.to_integral_value() or value <= 0:
        raise NotificationRejected(f"alipay notification: amount {amount!r} is not a whole number of fen")
    return int(value)


def form_of(body: bytes) -> dict[str, str]:
    """The notification's parameters, decoded with the charset it names (utf-8 unless it says gbk)."""
    text = body.decode("latin-1")
    charset = dict(parse_qsl(text)).get("charset", "utf-8").lower()
    try:
        return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict"))
    except (LookupError, UnicodeDecodeError) as exc:
        raise NotificationRejected(f"alipay notification: not {charset} ({exc})") from None


class AlipayProvider:
    name = "alipay"

    def __init__(self, account: AlipayAccount) -> None:
        self.account = account

    async def checkout(self, order: PaymentOrder) -> dict[str, str]:
        created = order.created_at.astimezone(BEIJING)
        params = {
            "app_id": self.account.app_id,
            "method": "alipay.trade.wap.pay",
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": created.strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "notify_url": self.account.notify_url,
            "biz_content": orjson.dumps({
                "out_trade_no": order_reference(order.id),
                "total_amount": yuan(order.amount_fen),
                "subject": f"Electricity top-up {order.room}",
                "product_code": "QUICK_WAP_WAY",
                "passback_params": quote(order.room),  # comes back in the notification: the room paid for
            }).decode(),
        }  # fmt: skip
        params["sign"] = sign(self.account.app_private_key, request_signing_string(params))
        return {"pay_url": f"{self.account.gateway}?{urlencode(params)}", "out_trade_no": order_reference(order.id)}

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> VerifiedNotification:
        params = form_of(body)
        if params.get("sign_type", "RSA2") != "RSA2":
            raise NotificationRejected(f"alipay notification signed with {params['sign_type']}, not RSA2")
        if not verified(self.account.alipay_public_key, notification_signing_string(params), params.get("sign", "")):
            raise NotificationRejected("alipay notification: bad signature")
        if params.get("app_id") != self.account.app_id:
            raise NotificationRejected(f"alipay notification for another application ({params.get('app_id')})")
        if self.account.seller_id and params.get("seller_id") != self.account.seller_id:
            raise NotificationRejected(f"alipay notification for another seller ({params.get('seller_id')})")
        order_id = order_from_reference(checked(params.get("out_trade_no"), "out_trade_no"))
        passback = params.get("passback_params")
        return VerifiedNotification(
            order_id=order_id,
            trade_no=checked(params.get("trade_no"), "trade_no"),
            amount_fen=fen_of(checked(params.get("total_amount"), "total_amount")),
            room=unquote(passback) if passback else None,
            body=body.decode("latin-1"),
            paid=params.get("trade_status") in PAID,
        )

    def answer(self, error: str | None, credited: bool) -> NotifyAnswer:
        return NotifyAnswer(200, b"success" if error is None else b"fail", "text/plain")
