"""WeChat Pay (API v3): a top-up is paid by scanning a Native-payment QR code, whose ``code_url`` houqin
asks WeChat Pay for with a request signed by the merchant's key; WeChat Pay then posts a notification.

Both WeChat Pay's answers and its notifications are signed (SHA256withRSA) over ``timestamp\\nnonce\\nbody\\n``
with the platform key named by ``Wechatpay-Serial``: an unknown serial, a bad signature, or a timestamp
more than five minutes from houqin's clock (a replayed capture; the common SDKs do not check it) is
rejected. The notification's resource is decrypted with the API v3 key (AES-256-GCM, with its nonce and
associated data), and must be a successful CNY payment to this merchant and application; the desk checks
the order, amount and room (carried in ``attach``). The answer is 204 when received, else a 4xx with
``{"code":"FAIL","message":…}``, which makes WeChat Pay resend."""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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

SCHEME = "WECHATPAY2-SHA256-RSA2048"
NATIVE = "/v3/pay/transactions/native"


class CheckoutFailed(Exception):  # noqa: N818 - reads as what happened
    """WeChat Pay did not hand out a payment code (its answer names why)."""


@dataclass(frozen=True)
class WechatAccount:
    mchid: str
    appid: str
    merchant_serial: str  # the serial of the merchant certificate whose private key signs requests
    merchant_private_key: rsa.RSAPrivateKey
    api_v3_key: bytes  # 32 bytes
    platform_keys: dict[str, rsa.RSAPublicKey]  # by serial (a platform certificate's, or PUB_KEY_ID_…)
    api_base: str
    notify_url: str
    window_s: int = 300


class WechatPayProvider:
    name = "wechat"

    def __init__(self, account: WechatAccount, http: httpx.AsyncClient | None = None) -> None:
        self.account = account
        self._http = http or httpx.AsyncClient(timeout=10)

    def authorization(self, method: str, path: str, body: bytes, now: datetime) -> str:
        timestamp, nonce = str(int(now.timestamp())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = sign(self.account.merchant_private_key, message)
        return (f'{SCHEME} mchid="{self.account.mchid}",nonce_str="{nonce}",signature="{signature}",'
                f'timestamp="{timestamp}",serial_no="{self.account.merchant_serial}"')  # fmt: skip

    async def checkout(self, order: PaymentOrder) -> dict[str, str]:
        body = orjson.dumps({
            "appid": self.account.appid,
            "mchid": self.account.mchid,
            "description": f"Electricity top-up {order.room}",
            "out_trade_no": order_reference(order.id),
            "notify_url": self.account.notify_url,
            "attach": order.room,
            "amount": {"total": order.amount_fen, "currency": "CNY"},
        })  # fmt: skip
        now = datetime.now().astimezone()
        headers = {"Authorization": self.authorization("POST", NATIVE, body, now),
                   "Content-Type": "application/json", "Accept": "application/json"}  # fmt: skip
        try:
            answer = await self._http.post(self.account.api_base + NATIVE, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CheckoutFailed(f"WeChat Pay unreachable: {exc}") from None
        if answer.status_code != 200:
            raise CheckoutFailed(f"WeChat Pay refused the order ({answer.status_code}): {answer.text[:200]}")
        try:
            headers = {name.lower(): value for name, value in answer.headers.items()}
            self._check_signed(headers, answer.content, datetime.now().astimezone())
            code_url = checked(orjson.loads(answer.content).get("code_url"), "code_url")
        except (NotificationRejected, orjson.JSONDecodeError, AttributeError) as exc:
            raise CheckoutFailed(f"WeChat Pay's answer is not genuine or not understood: {exc}") from None
        return {"code_url": code_url, "out_trade_no": order_reference(order.id)}

    def _check_signed(self, headers: dict[str, str], body: bytes, now: datetime) -> None:
        serial = headers.get("wechatpay-serial", "")
        key = self.account.platform_keys.get(serial)
        if key is None:
            raise NotificationRejected(f"wechat: signed by unknown platform key {serial!r}")
        try:
            timestamp = int(headers.get("wechatpay-timestamp", ""))
        except ValueError:
            raise NotificationRejected("wechat: no Wechatpay-Timestamp") from None
        if abs(now.timestamp() - timestamp) > self.account.window_s:
            raise NotificationRejected(f"wechat: timestamp {timestamp} is more than {self.account.window_s} s "
                                       "from now (replayed?)")  # fmt: skip
        nonce = headers.get("wechatpay-nonce", "")
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        if not verified(key, message, headers.get("wechatpay-signature", "")):
            raise NotificationRejected("wechat: bad signature")

    def _decrypt(self, resource: dict[str, Any]) -> dict[str, Any]:
        if resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise NotificationRejected(f"wechat: resource encrypted with {resource.get('algorithm')!r}")
        try:
            plain = AESGCM(self.account.api_v3_key).decrypt(
                checked(resource.get("nonce"), "resource nonce").encode(),
                base64.b64decode(checked(resource.get("ciphertext"), "ciphertext"), validate=True),
                str(resource.get("associated_data") or "").encode(),
            )
            data = orjson.loads(plain)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise NotificationRejected(f"wechat: resource does not decrypt with the API v3 key ({exc!r})") from None
        if not isinstance(data, dict):
            raise NotificationRejected("wechat: resource is not an object")
        return data

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> VerifiedNotification:
        self._check_signed(headers, body, now)
        try:
            envelope = orjson.loads(body)
            resource = envelope["resource"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise NotificationRejected("wechat: notification without a resource") from None
        payment = self._decrypt(resource)
        if payment.get("mchid") != self.account.mchid or payment.get("appid") != self.account.appid:
            raise NotificationRejected(f"wechat: payment to another merchant or application "
                                       f"({payment.get('mchid')}, {payment.get('appid')})")  # fmt: skip
        amount = payment.get("amount")
        if not isinstance(amount, dict) or not isinstance(amount.get("total"), int):
            raise NotificationRejected("wechat: payment without an amount")
        if amount.get("currency", "CNY") != "CNY":
            raise NotificationRejected(f"wechat: payment in {amount.get('currency')}")
        paid = envelope.get("event_type") == "TRANSACTION.SUCCESS" and payment.get("trade_state") == "SUCCESS"
        return VerifiedNotification(
            order_id=order_from_reference(checked(payment.get("out_trade_no"), "out_trade_no")),
            trade_no=checked(payment.get("transaction_id"), "transaction_id"),
            amount_fen=amount["total"],
            room=payment.get("attach") or None,
            body=body.decode(errors="replace"),
            paid=paid,
        )

    def answer(self, error: str | None, credited: bool) -> NotifyAnswer:
        if error is None:
            return NotifyAnswer(204, b"", "application/json")
        return NotifyAnswer(400, orjson.dumps({"code": "FAIL", "message": error}), "application/json")

    async def close(self) -> None:
        await self._http.aclose()
