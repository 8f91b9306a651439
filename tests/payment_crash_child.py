"""houqin's API in a process of its own, which kills itself (SIGKILL, no clean-up) while it applies a
payment notification: just before the transaction commits, or just after it committed and before the
answer is sent. Usage: python -m tests.payment_crash_child DATABASE_URL DATA_DIR before|after|never"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from assembly import ProcessRole, assemble
from houqin.billing.policy import PowerPolicy
from houqin.inventory import load_inventory
from houqin.settings import PaymentSettings, Settings, TelemetrySettings
from houqin.store import Database
from houqin.store.tables import LedgerEntry
from houqin.telemetry.embedded_store import EmbeddedStore

REPO = Path(__file__).resolve().parent.parent


def die_at_commit(when: str) -> None:
    original = AsyncSession.commit
    original_post = PowerPolicy.post

    async def post(self: PowerPolicy, session: AsyncSession, *args: Any, **kwargs: Any) -> LedgerEntry | None:
        session.info["credits money"] = True  # the transaction that credits a wallet is the one to kill
        return await original_post(self, session, *args, **kwargs)

    async def commit(self: AsyncSession) -> None:
        credits_money = self.info.pop("credits money", False)
        if credits_money and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        await original(self)
        if credits_money and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    AsyncSession.commit = commit  # type: ignore[method-assign]
    PowerPolicy.post = post  # type: ignore[method-assign]


async def serve(url: str, data_dir: Path) -> None:
    database = Database(url)
    telemetry = EmbeddedStore(data_dir / "telemetry.sqlite3", TelemetrySettings())
    await telemetry.open()
    settings = Settings(data_dir=data_dir, payments=PaymentSettings(sandbox=True), api_port=0)
    inventory = load_inventory(REPO / "devices.yaml")
    async with assemble(settings, inventory, roles={ProcessRole.API}, database=database, telemetry=telemetry) as houqin:
        assert houqin.api is not None
        print(houqin.api.url, flush=True)
        await houqin.api.run(asyncio.Event())


if __name__ == "__main__":
    database_url, directory, moment = sys.argv[1:4]
    if moment != "never":
        die_at_commit(moment)
    asyncio.run(serve(database_url, Path(directory)))
