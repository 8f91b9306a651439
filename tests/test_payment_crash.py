"""A houqin killed while it applies a payment notification (real PostgreSQL, real processes, SIGKILL):
killed before the commit, nothing was credited and the provider's resend — answered by another process —
credits once; killed after the commit but before answering, the resend is answered as a success and
credits nothing more. Either way the balance is the sum of the entries."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from houqin.billing.ledger import balance_from_entries, ensure_wallets
from houqin.billing.providers.sandbox import SandboxProvider
from houqin.settings import Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import PaymentOrder, Wallet
from tests.conftest import create_pg_database
from tests.servers import Postgres, stop

REPO = Path(__file__).resolve().parent.parent


class Houqin:
    def __init__(self, url: str, data_dir: Path, die: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.payment_crash_child", url, str(data_dir), die],
                                        cwd=REPO, stdout=subprocess.PIPE)  # fmt: skip
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().decode().strip()
        assert self.url.startswith("http://"), "the API process did not start"

    def __enter__(self) -> Houqin:
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self.process)


@pytest.mark.parametrize("moment", ["before", "after"])
async def test_a_killed_houqin_credits_the_resent_notification_once(
    postgres: Postgres, tmp_path: Path, moment: str
) -> None:
    url = await create_pg_database(postgres)
    database = Database(url)
    await upgrade_database(database)
    await ensure_wallets(database, ["D1-101"])
    async with database.session() as session:
        order = PaymentOrder(room="D1-101", provider="sandbox", amount_fen=2000, state="created", requested_by="alice",
                             idempotency_key="crash-0001", created_at=datetime.now(UTC))  # fmt: skip
        session.add(order)
        await session.commit()
    delivery = await SandboxProvider(Settings(data_dir=tmp_path).sandbox_key()).checkout(order)

    async def deliver(base: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            return await http.post("/api/v1/payments/sandbox/notify", content=delivery["notification"].encode(),
                                   headers={"X-Sandbox-Signature": delivery["signature"]})  # fmt: skip

    async def money() -> tuple[int, int]:
        async with database.session() as session:
            wallet = await session.get(Wallet, "D1-101")
            assert wallet is not None
            return wallet.balance_fen, await balance_from_entries(session, "D1-101")

    # Two API processes on one database: the one the notification reaches dies in it; the provider's resend
    # reaches the other (behind a load balancer), and a third delivery comes after the first is restarted.
    with Houqin(url, tmp_path, "never") as survivor:
        with Houqin(url, tmp_path, moment) as dying:
            with pytest.raises(httpx.TransportError):  # the provider gets no answer, so it will resend
                await deliver(dying.url)
            assert dying.process.wait(10) == -9
        assert await money() == ((0, 0) if moment == "before" else (2000, 2000))
        resent = await deliver(survivor.url)
        assert resent.status_code == 200
        assert resent.json()["credited"] is (moment == "before")
    with Houqin(url, tmp_path, "never") as restarted:
        again = await deliver(restarted.url)
        assert again.status_code == 200 and again.json()["credited"] is False
    assert await money() == (2000, 2000)
    await database.close()
