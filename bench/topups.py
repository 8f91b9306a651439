"""Signed top-up notifications through houqin's HTTP API into PostgreSQL.

A throw-away PostgreSQL cluster, houqin's API served by uvicorn on a loopback port, payment orders for
the demo campus's rooms, and 50 concurrent HTTP clients (kept-alive connections, in a process of their
own) delivering the sandbox provider's signed notifications, a tenth of them twice (as providers do).
Prints notifications/s, p50/p99 latency, and the number of double credits counted in the ledger (must
be 0).

    .venv/bin/python bench/topups.py [--orders 3000] [--clients 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assembly import ProcessRole, assemble  # noqa: E402
from houqin import event_loop  # noqa: E402
from houqin.billing.ledger import ensure_wallets  # noqa: E402
from houqin.billing.providers.sandbox import SandboxProvider  # noqa: E402
from houqin.inventory import load_inventory  # noqa: E402
from houqin.settings import PaymentSettings, Settings, TelemetrySettings  # noqa: E402
from houqin.store import Database, upgrade_database  # noqa: E402
from houqin.store.tables import LedgerEntry, PaymentOrder  # noqa: E402
from houqin.telemetry.embedded_store import EmbeddedStore  # noqa: E402
from tests.conftest import create_pg_database  # noqa: E402
from tests.servers import postgres_server  # noqa: E402


def _request(host: str, delivery: dict[str, str]) -> bytes:
    body = delivery["notification"].encode()
    head = (f"POST /api/v1/payments/sandbox/notify HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Sandbox-Signature: {delivery['signature']}\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response on a kept-alive connection: its status and body."""
    status = int((await reader.readuntil(b"\r\n")).split(b" ", 2)[1])
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def deliver_all(url: str, deliveries: list[dict[str, str]], clients: int, results: Any) -> None:
    """In its own process: ``clients`` concurrent kept-alive HTTP/1.1 connections posting the notifications.

    The requests are built before the clock starts and written on plain sockets (as a load tool like wrk
    does): on a two-core machine a full HTTP client library would take CPU from the server it measures."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    requests = [_request(host, delivery) for delivery in deliveries]

    async def main() -> tuple[list[float], int, float]:
        pending = iter(requests)
        latencies: list[float] = []
        credited = 0

        async def client() -> None:
            nonlocal credited
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                for request in pending:
                    started = time.perf_counter()
                    writer.write(request)
                    status, body = await _answer(reader)
                    latencies.append(time.perf_counter() - started)
                    if status != 200:
                        raise RuntimeError(f"notification answered {status}: {body.decode()}")
                    credited += bool(orjson.loads(body)["credited"])
            finally:
                writer.close()

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return latencies, credited, time.perf_counter() - began

    results.put(asyncio.run(main()))


async def run(orders: int, clients: int, workdir: Path) -> None:
    inventory = load_inventory(ROOT / "devices.yaml")
    rooms = sorted(inventory.rooms)
    with postgres_server() as server:
        database = Database(await create_pg_database(server))
        await upgrade_database(database)
        await ensure_wallets(database, rooms)
        async with database.session() as session:
            rows = [PaymentOrder(room=rooms[n % len(rooms)], provider="sandbox", amount_fen=1000 + n % 500,
                                 state="created", requested_by="bench", idempotency_key=f"bench-{n:08d}",
                                 created_at=datetime.now(UTC)) for n in range(orders)]  # fmt: skip
            session.add_all(rows)
            await session.commit()
        settings = Settings(data_dir=workdir, payments=PaymentSettings(sandbox=True), api_port=0)
        provider = SandboxProvider(settings.sandbox_key())
        telemetry = EmbeddedStore(workdir / "telemetry.sqlite3", TelemetrySettings())
        async with assemble(settings, inventory, roles={ProcessRole.API}, database=database,
                            telemetry=telemetry) as houqin:  # fmt: skip
            api = houqin.api
            assert api is not None
            stop = asyncio.Event()
            serving = asyncio.create_task(api.run(stop))
            deliveries = [await provider.checkout(order) for order in rows]
            deliveries += random.Random(7).sample(deliveries, orders // 10)  # a tenth sent twice
            random.Random(8).shuffle(deliveries)
            # The clients run in their own process: what is measured is houqin, not the load generator.
            context = multiprocessing.get_context("spawn")
            results = context.Queue()
            load = context.Process(target=deliver_all, args=(api.url, deliveries, clients, results), daemon=True)
            await asyncio.sleep(0.2)
            load.start()
            latencies, credited, elapsed = await asyncio.to_thread(results.get, True, 600)
            await asyncio.to_thread(load.join, 30)
            stop.set()
            await serving
        async with database.session() as session:
            entries = (await session.execute(select(func.count()).select_from(LedgerEntry)
                                             .where(LedgerEntry.kind == "topup"))).scalar_one()  # fmt: skip
        await database.close()
        await telemetry.close()
    double = entries - orders
    rate = len(deliveries) / elapsed
    ordered = sorted(latencies)
    p50, p99 = statistics.median(ordered) * 1000, ordered[int(0.99 * (len(ordered) - 1))] * 1000
    print(f"{len(deliveries)} notifications ({orders} orders, {len(deliveries) - orders} duplicates) from {clients} "
          f"clients in {elapsed:.1f} s: {rate:,.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
          f"{credited} credited, {entries} top-up entries")  # fmt: skip
    print(f"topups_per_s={rate:.0f} p99_ms={p99:.1f} double_credits={double}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="houqin-bench-") as workdir:
        event_loop.run(run(args.orders, args.clients, Path(workdir)))


if __name__ == "__main__":
    main()
