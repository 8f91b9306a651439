"""Alipay (RSA2), WeChat Pay (v3) and the campus-card counter through the API, on SQLite and PostgreSQL:
genuine notifications credit once, forged ones (wrong key, tampered amount, stale timestamp, unknown key,
wrong merchant) change nothing, and each provider gets the answer it expects."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from houqin.billing.providers.alipay import request_signing_string
from houqin.billing.providers.enabled import enabled_providers
from houqin.billing.providers.rsa_keys import KeyFileError, load_private_key, load_public_key, sign
from houqin.inventory import Inventory
from houqin.settings import AlipaySettings, PaymentSettings, Settings
from houqin.store import Database
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import sign_in
from tests.conftest import in_process_api
from tests.payment_providers import Alipay, WechatPay, bare_public, new_key


@pytest.fixture
def alipay(tmp_path: Path) -> Alipay:
    return Alipay(tmp_path)


@pytest.fixture
async def wechat(tmp_path: Path) -> AsyncIterator[WechatPay]:
    provider = WechatPay(tmp_path)
    async with provider.order_api():
        yield provider


@pytest.fixture
async def api(
    client: httpx.AsyncClient, database: Database, demo_inventory: Inventory, telemetry: EmbeddedStore,
    tmp_path: Path, alipay: Alipay, wechat: WechatPay,
) -> AsyncIterator[httpx.AsyncClient]:  # fmt: skip
    """The API with Alipay and WeChat Pay enabled (accounts from the ``client`` fixture)."""
    payments = PaymentSettings(public_url="https://houqin.example.edu", alipay=alipay.settings(),
                               wechat=wechat.settings())  # fmt: skip
    settings = Settings(data_dir=tmp_path, payments=payments)
    async with in_process_api(settings, demo_inventory, database, telemetry) as http:
        yield http


async def order(http: httpx.AsyncClient, headers: dict[str, str], provider: str, key: str, amount: int) -> dict:  # type: ignore[type-arg]
    answer = await http.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": amount, "provider": provider},
                             headers={**headers, "Idempotency-Key": key})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def balance(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return int((await http.get("/api/v1/rooms/D1-101/wallet", headers=headers)).json()["balance_fen"])


async def test_alipay_notifications_are_verified_and_applied_once(api: httpx.AsyncClient, alipay: Alipay) -> None:
    alice = await sign_in(api, "alice")
    paid = await order(api, alice, "alipay", "alipay-order-1", 2550)
    # The pay URL is a request to Alipay's gateway, signed with the school's application key.
    pay_url = urlsplit(paid["checkout"]["pay_url"])
    request = dict(parse_qsl(pay_url.query))
    assert alipay.app_signed(request) and request["method"] == "alipay.trade.wap.pay"
    assert request["sign"] == alipay.sdk_signature(request) and request["sign_type"] == "RSA2"
    biz = orjson.loads(request["biz_content"])
    assert biz["total_amount"] == "25.50" and biz["out_trade_no"] == paid["checkout"]["out_trade_no"]
    assert request["notify_url"] == "https://houqin.example.edu/api/v1/payments/alipay/notify"

    async def post(params: dict[str, str]) -> httpx.Response:
        return await api.post("/api/v1/payments/alipay/notify", content=Alipay.form(params),
                              headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip

    genuine = alipay.notification(biz["out_trade_no"], "25.50", trade_no="2026112322001400000000000001")
    answers = await asyncio.gather(*(post(genuine) for _ in range(10)))  # sent at once, several times
    assert {(answer.status_code, answer.text) for answer in answers} == {(200, "success")}
    assert await balance(api, alice) == 2550
    # TRADE_FINISHED after TRADE_SUCCESS is the same trade: received, nothing more credited.
    finished = alipay.notification(biz["out_trade_no"], "25.50", trade_no="2026112322001400000000000001",
                                   status="TRADE_FINISHED")  # fmt: skip
    assert (await post(finished)).text == "success"
    assert await balance(api, alice) == 2550

    second = await order(api, alice, "alipay", "alipay-order-2", 1000)
    reference = second["checkout"]["out_trade_no"]
    forged = alipay.notification(reference, "10.00", key=new_key())  # signed with another key
    tampered = alipay.notification(reference, "10.00") | {"total_amount": "1000.00"}  # changed after signing
    other_app = alipay.notification(reference, "10.00", app_id="2021000000009999")
    unsigned = {k: v for k, v in alipay.notification(reference, "10.00").items() if k != "sign"}
    for params in (forged, tampered, other_app, unsigned):
        answer = await post(params)
        assert (answer.status_code, answer.text) == (200, "fail")  # Alipay resends anything but "success"
    # Genuinely signed, but not what was ordered: rejected (and alerted), nothing credited.
    assert (await post(alipay.notification(reference, "100.00"))).text == "fail"
    assert (await post(alipay.notification(reference, "10.00", room="D1-102"))).text == "fail"
    # A closed trade is received (so Alipay stops) and credits nothing.
    assert (await post(alipay.notification(reference, "10.00", status="TRADE_CLOSED"))).text == "success"
    assert await balance(api, alice) == 2550
    assert (await post(alipay.notification(reference, "10.00"))).text == "success"
    assert await balance(api, alice) == 3550
    topups = (await api.get("/api/v1/rooms/D1-101/topups", headers=alice)).json()
    assert [(t["provider"], t["amount_fen"], t["state"]) for t in topups] == [("alipay", 1000, "paid"),
                                                                              ("alipay", 2550, "paid")]  # fmt: skip


async def test_wechat_pay_notifications_are_verified_and_applied_once(
    api: httpx.AsyncClient, wechat: WechatPay
) -> None:
    alice = await sign_in(api, "alice")
    paid = await order(api, alice, "wechat", "wechat-order-1", 3000)
    assert paid["checkout"]["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    placed = wechat.orders[-1]
    assert placed["amount"] == {"total": 3000, "currency": "CNY"} and placed["attach"] == "D1-101"
    assert placed["notify_url"] == "https://houqin.example.edu/api/v1/payments/wechat/notify"
    reference = paid["checkout"]["out_trade_no"]

    async def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await api.post("/api/v1/payments/wechat/notify", content=body,
                              headers={**headers, "Content-Type": "application/json"})  # fmt: skip

    body = wechat.notification(reference, 3000, transaction_id="4200002026112300000000000001")
    headers = wechat.signed_headers(body)
    answers = await asyncio.gather(*(post(body, headers) for _ in range(10)))
    assert {answer.status_code for answer in answers} == {204}
    assert await balance(api, alice) == 3000

    second = await order(api, alice, "wechat", "wechat-order-2", 1500)
    reference = second["checkout"]["out_trade_no"]
    body = wechat.notification(reference, 1500)
    now = int(time.time())
    forgeries = {
        "signed with another key": (body, wechat.signed_headers(body, key=new_key())),
        "body changed after signing": (body.replace(b'"TRANSACTION.SUCCESS"', b'"TRANSACTION.SUCCESS" '),
                                       wechat.signed_headers(body)),
        "stale timestamp": (body, wechat.signed_headers(body, at=now - 6 * 60)),
        "from the future": (body, wechat.signed_headers(body, at=now + 6 * 60)),
        "unknown key serial": (body, wechat.signed_headers(body, serial="PUB_KEY_ID_UNKNOWN")),
        "encrypted with another key": (wrong := wechat.notification(reference, 1500, api_v3_key="k" * 32),
                                       wechat.signed_headers(wrong)),
        "not the amount ordered": (more := wechat.notification(reference, 150000), wechat.signed_headers(more)),
        "another room": (elsewhere := wechat.notification(reference, 1500, room="D1-102"),
                         wechat.signed_headers(elsewhere)),
    }  # fmt: skip
    for what, (forged_body, forged_headers) in forgeries.items():
        answer = await post(forged_body, forged_headers)
        assert answer.status_code == 400, what
        assert answer.json()["code"] == "FAIL", what
    assert await balance(api, alice) == 3000
    # Within the window and genuine: credited.
    assert (await post(body, wechat.signed_headers(body, at=now - 4 * 60))).status_code == 204
    assert await balance(api, alice) == 4500


async def test_wechat_pay_checkout_fails_cleanly_when_its_answer_is_not_genuine(
    api: httpx.AsyncClient, wechat: WechatPay
) -> None:
    alice = await sign_in(api, "alice")
    wechat.key = new_key()  # the order API now signs with a key houqin does not know
    answer = await api.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 1000, "provider": "wechat"},
                            headers={**alice, "Idempotency-Key": "wechat-order-9"})  # fmt: skip
    assert answer.status_code == 502 and "not genuine" in answer.text


async def test_campus_card_top_ups_are_made_by_cashiers_once(api: httpx.AsyncClient) -> None:
    alice, cashier = await sign_in(api, "alice"), await sign_in(api, "zhao")
    refused = await api.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 5000, "provider": "campus_card"},
                             headers={**alice, "Idempotency-Key": "counter-0001"})  # fmt: skip
    assert refused.status_code == 403
    answers = await asyncio.gather(*(order(api, cashier, "campus_card", "counter-0001", 5000) for _ in range(5)))
    assert len({answer["order"]["id"] for answer in answers}) == 1
    assert answers[0]["order"]["state"] == "paid"
    assert await balance(api, alice) == 5000
    conflict = await api.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 6000, "provider": "campus_card"},
                              headers={**cashier, "Idempotency-Key": "counter-0001"})  # fmt: skip
    assert conflict.status_code == 409
    ledger = (await api.get("/api/v1/rooms/D1-101/ledger", headers=alice)).json()
    assert [(e["kind"], e["amount_fen"], e["cause"]) for e in ledger] == [("topup", 5000, "campus_card:zhao")]


def key_forms(key: rsa.RSAPrivateKey) -> dict[str, bytes]:
    """Every form in which Alipay's console, its key tool and OpenSSL hand out an application key."""

    def der(form: serialization.PrivateFormat) -> bytes:
        return key.private_bytes(serialization.Encoding.DER, form, serialization.NoEncryption())

    def pem(form: serialization.PrivateFormat) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, form, serialization.NoEncryption())

    pkcs1, pkcs8 = serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8
    wrapped = base64.encodebytes(der(pkcs8))  # the key tool's .txt may be wrapped at 76 columns
    return {"bare PKCS#1 (key tool, non-Java; the SDK's form)": base64.b64encode(der(pkcs1)) + b"\n",
            "bare PKCS#8 (key tool, Java)": base64.b64encode(der(pkcs8)),
            "bare PKCS#8, wrapped, CRLF": wrapped.replace(b"\n", b"\r\n"),
            "PEM PKCS#1": pem(pkcs1), "PEM PKCS#8": pem(pkcs8),
            "PEM with a UTF-8 BOM": b"\xef\xbb\xbf" + pem(pkcs8)}  # fmt: skip


def test_every_form_of_an_alipay_key_loads_and_signs_as_the_sdk_does(tmp_path: Path) -> None:
    alipay = Alipay(tmp_path)
    request = {"app_id": alipay.app_id, "method": "alipay.trade.wap.pay", "sign_type": "RSA2", "charset": "utf-8",
               "biz_content": '{"subject":"电费充值 D1-101","total_amount":"25.50"}'}  # fmt: skip
    for form, text in key_forms(alipay.app_key).items():
        path = tmp_path / "app-key.txt"
        path.write_bytes(text)
        key = load_private_key(path, "payments.alipay.app_private_key_file")
        signature = sign(key, request_signing_string(request))
        assert signature == alipay.sdk_signature(request), form
    public = alipay.key.public_key()
    for form, text in {
        "bare SubjectPublicKeyInfo (the console's Alipay public key)": bare_public(alipay.key).encode(),
        "PEM": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "bare PKCS#1": base64.b64encode(public.public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.PKCS1)),
        "PEM PKCS#1": public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
    }.items():  # fmt: skip
        path = tmp_path / "alipay-public.txt"
        path.write_bytes(text)
        assert load_public_key(path, "payments.alipay.alipay_public_key_file").public_numbers() == \
            public.public_numbers(), form  # fmt: skip


def test_a_key_file_that_does_not_load_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "app.pem").write_text("not a key")
    (tmp_path / "public.pem").write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    alipay = AlipaySettings(app_id="2021", app_private_key_file=tmp_path / "app.pem",
                            alipay_public_key_file=tmp_path / "public.pem")  # fmt: skip
    settings = Settings(data_dir=tmp_path, payments=PaymentSettings(alipay=alipay))
    with pytest.raises(KeyFileError, match=r"payments\.alipay\.app_private_key_file: .*app\.pem"):
        enabled_providers(settings)
