"""Alipay and WeChat Pay as the tests see them: their keys (generated per test), the notifications they
would send, signed as they sign them, and WeChat Pay's order API as a server on a real socket. Only the
providers' servers are stood in for; houqin's side is the real code. Alipay's side is Alipay's own
Python SDK (``alipay-sdk-python``): it signs the notifications and checks houqin's payment requests, so
that houqin's signing string is tested against an implementation houqin did not write."""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
from alipay.aop.api.util.SignatureUtils import get_sign_content, sign_with_rsa2, verify_with_rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Request, Response

from api.server import ApiServer
from houqin.billing.providers.rsa_keys import sign, verified
from houqin.settings import AlipaySettings, WechatPaySettings


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_private(key: rsa.RSAPrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    return path


def bare_pkcs1(key: rsa.RSAPrivateKey) -> str:
    """The application private key as Alipay's key tool gives it for non-Java use and as Alipay's SDK takes
    it: the base64 of the PKCS#1 key, without PEM armour."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())  # fmt: skip
    return base64.b64encode(der).decode()


def bare_public(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def write_public(key: rsa.RSAPrivateKey, path: Path, bare: bool = False) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if bare:  # as Alipay's console shows it: the base64 alone
        pem = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    path.write_bytes(pem)
    return path


@dataclass
class Alipay:
    directory: Path
    app_id: str = "2021000000000001"
    seller_id: str = "2088000000000001"
    key: rsa.RSAPrivateKey = field(default_factory=new_key)  # Alipay's own: signs notifications
    app_key: rsa.RSAPrivateKey = field(default_factory=new_key)  # the school's application key

    def settings(self) -> AlipaySettings:
        return AlipaySettings(
            app_id=self.app_id,
            seller_id=self.seller_id,
            app_private_key_file=self.app_key_file(),
            alipay_public_key_file=write_public(self.key, self.directory / "alipay-public.txt", bare=True),
        )

    def app_key_file(self) -> Path:
        """The application key as the key tool saves it for non-Java use (``应用私钥RSA2048.txt``)."""
        path = self.directory / "alipay-app-private.txt"
        path.write_text(bare_pkcs1(self.app_key) + "\n")
        return path

    def notification(self, out_trade_no: str, amount: str, *, room: str = "D1-101", trade_no: str = "",
                     status: str = "TRADE_SUCCESS", key: rsa.RSAPrivateKey | None = None,
                     **overrides: str) -> dict[str, str]:  # fmt: skip
        params = {
            "notify_time": "2026-11-23 21:30:00", "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16), "app_id": self.app_id, "charset": "utf-8", "version": "1.0",
            "sign_type": "RSA2", "trade_no": trade_no or f"2026112322001{secrets.randbelow(10**12):012d}",
            "out_trade_no": out_trade_no, "trade_status": status, "total_amount": amount,
            "seller_id": self.seller_id, "buyer_id": "2088102116773037", "subject": f"电费充值 {room}",
            "passback_params": room, "gmt_payment": "2026-11-23 21:29:58",
        } | overrides  # fmt: skip
        # Alipay signs a notification over every parameter but sign and sign_type.
        content = get_sign_content({name: value for name, value in params.items() if name != "sign_type"})
        params["sign"] = sign_with_rsa2(bare_pkcs1(key or self.key), content, "utf-8")
        return params

    @staticmethod
    def form(params: dict[str, str]) -> bytes:
        return urlencode(params).encode()

    def app_signed(self, params: dict[str, str]) -> bool:
        """What Alipay's gateway checks of a payment request: signed by the school's application key over
        every parameter but ``sign`` (``sign_type`` included), as Alipay's SDK signs a request."""
        content = get_sign_content({name: value for name, value in params.items() if name != "sign"})
        try:
            return verify_with_rsa(bare_public(self.app_key), content.encode(), params["sign"])
        except Exception:  # the SDK raises rsa.VerificationError for a bad signature
            return False

    def sdk_signature(self, params: dict[str, str]) -> str:
        """The signature Alipay's SDK gives the same request (RSA PKCS#1 v1.5 is deterministic)."""
        content = get_sign_content({name: value for name, value in params.items() if name != "sign"})
        return str(sign_with_rsa2(bare_pkcs1(self.app_key), content, "utf-8"))


@dataclass
class WechatPay:
    directory: Path
    mchid: str = "1900000109"
    appid: str = "wx8888888888888888"
    merchant_serial: str = "5157F09EFDC096DE15EBE81A47057A72"
    platform_serial: str = "PUB_KEY_ID_0119000001202511230001"
    api_v3_key: str = field(default_factory=lambda: secrets.token_hex(16))
    key: rsa.RSAPrivateKey = field(default_factory=new_key)  # the platform's: signs answers, notifications
    merchant_key: rsa.RSAPrivateKey = field(default_factory=new_key)
    orders: list[dict[str, Any]] = field(default_factory=list)  # what the order API accepted
    api_base: str = ""

    def settings(self) -> WechatPaySettings:
        return WechatPaySettings(
            mchid=self.mchid, appid=self.appid, merchant_serial=self.merchant_serial,
            merchant_private_key_file=write_private(self.merchant_key, self.directory / "apiclient_key.pem"),
            api_v3_key=self.api_v3_key,  # type: ignore[arg-type]
            platform_keys={self.platform_serial: write_public(self.key, self.directory / "wechatpay-public.pem")},
            api_base=self.api_base or "http://127.0.0.1:9",
        )  # fmt: skip

    def signed_headers(self, body: bytes, *, at: int | None = None, key: rsa.RSAPrivateKey | None = None,
                       serial: str | None = None) -> dict[str, str]:  # fmt: skip
        timestamp, nonce = str(at if at is not None else int(time.time())), secrets.token_hex(16)
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": sign(key or self.key, message),
                "Wechatpay-Serial": serial or self.platform_serial,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}  # fmt: skip

    def notification(self, out_trade_no: str, total: int, *, room: str = "D1-101", transaction_id: str = "",
                     api_v3_key: str | None = None, state: str = "SUCCESS") -> bytes:  # fmt: skip
        payment = {
            "mchid": self.mchid, "appid": self.appid, "out_trade_no": out_trade_no,
            "transaction_id": transaction_id or f"4200002{secrets.randbelow(10**21):021d}",
            "trade_type": "NATIVE", "trade_state": state, "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "attach": room, "success_time": "2026-11-23T21:29:58+08:00", "payer": {"openid": "oUpF8uMuAJO_M2px"},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
        }  # fmt: skip
        nonce, associated = secrets.token_hex(6), "transaction"
        key = (api_v3_key or self.api_v3_key).encode()
        ciphertext = AESGCM(key).encrypt(nonce.encode(), orjson.dumps(payment), associated.encode())
        return orjson.dumps({
            "id": secrets.token_hex(16), "create_time": "2026-11-23T21:30:00+08:00",
            "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                         "associated_data": associated, "nonce": nonce,
                         "ciphertext": base64.b64encode(ciphertext).decode()},
        })  # fmt: skip

    @asynccontextmanager
    async def order_api(self) -> AsyncIterator[str]:
        """WeChat Pay's Native order API on a loopback port: it checks the merchant's signature as WeChat
        Pay does, and signs its answer with the platform key."""
        app = FastAPI()

        @app.post("/v3/pay/transactions/native")
        async def native(request: Request) -> Response:
            body = await request.body()
            scheme, _, fields = request.headers.get("authorization", "").partition(" ")
            parts = dict(part.split("=", 1) for part in fields.split(","))
            values = {name: value.strip('"') for name, value in parts.items()}
            message = (f"POST\n/v3/pay/transactions/native\n{values['timestamp']}\n{values['nonce_str']}\n".encode()
                       + body + b"\n")  # fmt: skip
            if (
                scheme != "WECHATPAY2-SHA256-RSA2048"
                or values.get("mchid") != self.mchid
                or not verified(self.merchant_key.public_key(), message, values.get("signature", ""))
            ):
                return Response(b'{"code":"SIGN_ERROR","message":"bad signature"}', 401)
            self.orders.append(orjson.loads(body))
            answer = orjson.dumps({"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(8)}"})
            return Response(answer, 200, headers=self.signed_headers(answer), media_type="application/json")

        server = ApiServer(app, "127.0.0.1", 0)
        stop = asyncio.Event()
        serving = asyncio.create_task(server.run(stop))
        self.api_base = server.url
        try:
            yield server.url
        finally:
            stop.set()
            await serving
