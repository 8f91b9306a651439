"""The sandbox provider, for the demo and the tests: it "pays at once" by handing the client a
notification signed with a key only this houqin knows (HMAC-SHA256), which the client posts to the notify
URL as a real provider would. Never enable it where money is real: whoever tops up gets the credit."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime

import orjson

from houqin.billing.providers import NotificationRejected, NotifyAnswer, VerifiedNotification
from houqin.store.tables import PaymentOrder


class SandboxProvider:
    name = "sandbox"

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, body: bytes) -> str:
        return base64.b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode()

    async def checkout(self, order: PaymentOrder) -> dict[str, str]:
        body = orjson.dumps({"order_id": order.id, "trade_no": f"SANDBOX{order.id:010d}",
                             "amount_fen": order.amount_fen, "room": order.room})  # fmt: skip
        return {
            "notify_url": "/api/v1/payments/sandbox/notify",
            "notification": body.decode(),
            "signature": self.sign(body),
        }

    def verify(self, headers: dict[str, str], body: bytes, now: datetime) -> VerifiedNotification:
        signature = headers.get("x-sandbox-signature", "")
        if not hmac.compare_digest(signature, self.sign(body)):
            raise NotificationRejected("sandbox notification: bad signature")
        try:
            data = orjson.loads(body)
            return VerifiedNotification(int(data["order_id"]), str(data["trade_no"]), int(data["amount_fen"]),
                                        str(data["room"]), body.decode())  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise NotificationRejected(f"sandbox notification: malformed ({exc})") from None

    def answer(self, error: str | None, credited: bool) -> NotifyAnswer:
        if error is None:  # whether it credited: for the tests and the benchmark to count
            return NotifyAnswer(200, orjson.dumps({"code": "SUCCESS", "credited": credited}), "application/json")
        return NotifyAnswer(400, orjson.dumps({"code": "FAIL", "message": error}), "application/json")
