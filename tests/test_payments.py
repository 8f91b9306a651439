"""Top-ups through the sandbox provider, on SQLite and PostgreSQL: idempotent orders, signed notifications
applied exactly once (also 50 at once), forged and mismatched ones rejected, concurrent top-ups all land."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import httpx
import orjson
import pytest

from houqin.billing.providers.sandbox import SandboxProvider
from houqin.inventory import Inventory
from houqin.settings import PaymentSettings, Settings
from houqin.store import Database
from houqin.telemetry.embedded_store import EmbeddedStore
from tests.api_client import sign_in
from tests.conftest import in_process_api


@pytest.fixture
async def paying(
    client: httpx.AsyncClient, database: Database, demo_inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the sandbox provider enabled (the accounts come from the ``client`` fixture)."""
    settings = Settings(data_dir=tmp_path, payments=PaymentSettings(sandbox=True))
    async with in_process_api(settings, demo_inventory, database, telemetry) as http:
        yield http


async def topup(http: httpx.AsyncClient, headers: dict[str, str], key: str, amount: int = 2000) -> dict:  # type: ignore[type-arg]
    answer = await http.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": amount, "provider": "sandbox"},
                             headers={**headers, "Idempotency-Key": key})  # fmt: skip
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def deliver(http: httpx.AsyncClient, body: str, signature: str) -> httpx.Response:
    return await http.post("/api/v1/payments/sandbox/notify", content=body.encode(),
                           headers={"X-Sandbox-Signature": signature})  # fmt: skip


async def balance(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return int((await http.get("/api/v1/rooms/D1-101/wallet", headers=headers)).json()["balance_fen"])


async def test_a_top_up_is_paid_once_whatever_is_resent(paying: httpx.AsyncClient, tmp_path: Path) -> None:
    alice, bob = await sign_in(paying, "alice"), await sign_in(paying, "bob")
    paid = await topup(paying, alice, "phone-order-1")
    again = await topup(paying, alice, "phone-order-1")
    assert again["order"]["id"] == paid["order"]["id"]
    conflict = await paying.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 3000, "provider": "sandbox"},
                                 headers={**alice, "Idempotency-Key": "phone-order-1"})  # fmt: skip
    assert conflict.status_code == 409
    checkout = paid["checkout"]
    # Fifty deliveries of the same notification at once: one credit.
    answers = await asyncio.gather(*(deliver(paying, checkout["notification"], checkout["signature"])
                                     for _ in range(50)))  # fmt: skip
    assert all(answer.status_code == 200 for answer in answers)
    assert sum(answer.json()["credited"] for answer in answers) == 1
    assert await balance(paying, alice) == 2000
    topups = (await paying.get("/api/v1/rooms/D1-101/topups", headers=alice)).json()
    assert [(t["amount_fen"], t["state"]) for t in topups] == [(2000, "paid")]
    # The room's ledger says who paid (roommates share the wallet); other entries name no payer.
    [entry] = (await paying.get("/api/v1/rooms/D1-101/ledger?limit=1", headers=alice)).json()
    assert (entry["kind"], entry["amount_fen"], entry["paid_by"]) == ("topup", 2000, "alice")

    # Forgeries change nothing: a wrong key, a tampered amount, a notification for an amount not ordered.
    second = await topup(paying, alice, "phone-order-2", 1000)
    forged = SandboxProvider(b"not-the-key")
    body = second["checkout"]["notification"]
    assert (await deliver(paying, body, forged.sign(body.encode()))).status_code == 400
    tampered = body.replace('"amount_fen":1000', '"amount_fen":100000')
    assert tampered != body
    assert (await deliver(paying, tampered, second["checkout"]["signature"])).status_code == 400
    genuine = SandboxProvider(Settings(data_dir=tmp_path).sandbox_key())  # a provider that pays the wrong sum
    mismatch = await deliver(paying, tampered, genuine.sign(tampered.encode()))
    assert mismatch.status_code == 400 and "does not match" in mismatch.text
    assert await balance(paying, alice) == 2000

    assert (await paying.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 2000, "provider": "sandbox"},
                              headers={**bob, "Idempotency-Key": "bob-order-1"})).status_code == 403  # fmt: skip
    small = await paying.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 1, "provider": "sandbox"},
                              headers={**alice, "Idempotency-Key": "phone-order-3"})  # fmt: skip
    assert small.status_code == 422 and "a top-up is" in small.text
    unknown = await paying.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 2000, "provider": "alipay"},
                                headers={**alice, "Idempotency-Key": "phone-order-4"})  # fmt: skip
    assert unknown.status_code == 422 and "not enabled" in unknown.text


async def test_fifty_different_top_ups_on_one_room_all_land(paying: httpx.AsyncClient) -> None:
    alice = await sign_in(paying, "alice")
    orders = [await topup(paying, alice, f"many-{n:04d}", 100 + n) for n in range(50)]
    answers = await asyncio.gather(*(deliver(paying, o["checkout"]["notification"], o["checkout"]["signature"])
                                     for o in orders))  # fmt: skip
    assert all(answer.json()["credited"] for answer in answers)
    assert await balance(paying, alice) == sum(100 + n for n in range(50))
    assert orjson.loads(orders[0]["checkout"]["notification"])["room"] == "D1-101"


@pytest.fixture
async def few_connections(
    client: httpx.AsyncClient, database_url: str, demo_inventory: Inventory, telemetry: EmbeddedStore, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The paying API on a pool smaller than the requests the tests send at once: on PostgreSQL 2 kept and
    10 more at peaks, on SQLite SQLAlchemy's 5 and 10 more."""
    database = Database(database_url, pool_size=2)
    settings = Settings(data_dir=tmp_path, payments=PaymentSettings(sandbox=True))
    try:
        async with in_process_api(settings, demo_inventory, database, telemetry) as http:
            yield http
    finally:
        await database.close()


async def test_concurrent_top_ups_never_exhaust_the_pool_nor_starve_others(few_connections: httpx.AsyncClient) -> None:
    """A request holds at most one pooled connection: twenty top-ups at once from one student (more than the
    pool has) all land, and another user is answered meanwhile."""
    alice, bob = await sign_in(few_connections, "alice"), await sign_in(few_connections, "bob")

    async def me() -> httpx.Response:
        await asyncio.sleep(0.01)  # while the top-ups are in flight
        return await few_connections.get("/api/v1/me", headers=bob)

    *answers, other = await asyncio.gather(
        *(few_connections.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 1000 + n, "provider": "sandbox"},
                               headers={**alice, "Idempotency-Key": f"burst-{n:04d}"}) for n in range(20)),
        me(),
    )  # fmt: skip
    assert [answer.status_code for answer in answers] == [201] * 20, [a.text for a in answers if a.status_code != 201]
    assert other.status_code == 200 and other.json()["username"] == "bob"
    assert len({answer.json()["order"]["id"] for answer in answers}) == 20


async def test_one_idempotency_key_sent_at_once_gives_one_order_to_every_request(
    few_connections: httpx.AsyncClient,
) -> None:
    alice = await sign_in(few_connections, "alice")
    for attempt in range(3):

        def post(amount: int, key: str) -> Awaitable[httpx.Response]:
            body = {"amount_fen": amount, "provider": "sandbox"}
            return few_connections.post("/api/v1/rooms/D1-101/topups", json=body,
                                        headers={**alice, "Idempotency-Key": key})  # fmt: skip

        answers = await asyncio.gather(*(post(2000, f"retried-{attempt}") for _ in range(5)))
        assert [answer.status_code for answer in answers] == [201] * 5, [answer.text for answer in answers]
        assert len({answer.json()["order"]["id"] for answer in answers}) == 1
        # Different bodies under one key at once: the first is the order, the others are 409s, none a 500.
        mixed = await asyncio.gather(*(post(3000 + n, f"mixed-key-{attempt}") for n in range(4)))
        assert sorted(answer.status_code for answer in mixed) == [201, 409, 409, 409]
    topups = (await few_connections.get("/api/v1/rooms/D1-101/topups", headers=alice)).json()
    assert len(topups) == 6


async def test_a_cashier_records_counter_payments_but_opens_no_online_order(few_connections: httpx.AsyncClient) -> None:
    zhao = await sign_in(few_connections, "zhao")
    online = await few_connections.post("/api/v1/rooms/D1-101/topups", json={"amount_fen": 2000, "provider": "sandbox"},
                                        headers={**zhao, "Idempotency-Key": "cashier-online-1"})  # fmt: skip
    assert online.status_code == 403 and "campus_card" in online.text
    counter = await few_connections.post("/api/v1/rooms/D1-101/topups",
                                         json={"amount_fen": 2000, "provider": "campus_card"},
                                         headers={**zhao, "Idempotency-Key": "cashier-counter-1"})  # fmt: skip
    assert counter.status_code == 201
