"""End to end on a simulated campus: a room with a small balance runs down under its load, its relay is
cut and its meter reads 0 W; a sandbox top-up is paid (its notification delivered twice, credited once),
the relay is restored and the power returns. Once with a Modbus meter and relay module, once with a
DL/T 645 meter that switches itself (0x1C, confirmed by its status word 3)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from assembly import Houqin, ProcessRole, assemble
from assembly.graph import Tuning
from houqin.billing.ledger import ensure_wallets, post
from houqin.inventory import load_inventory
from houqin.settings import Dlt645Settings, PaymentSettings, Settings
from houqin.store import Database, upgrade_database
from houqin.store.tables import PaymentOrder, Wallet
from tests.servers import free_port

INVENTORY = """
site: {name: Billing campus, timezone: Asia/Shanghai}
tariffs: [{id: dear, price_fen_per_kwh: 100000}]
gateways: [{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.3}]
devices:
  - {id: r101-meter, model: eastron-sdm120, gateway: floor1, unit: 1, building: dorm-9, floor: 1, room: R101,
     poll_interval: 0.5}
  - {id: r101-relay, model: generic-relay, gateway: floor1, unit: 11, building: dorm-9, floor: 1, room: R101,
     poll_interval: 0.5}
rooms:
  - {id: R101, building: dorm-9, floor: 1, meter: r101-meter, relay: r101-relay, tariff: dear}
"""

DLT645_INVENTORY = """
site: {name: Billing campus, timezone: Asia/Shanghai}
tariffs: [{id: dear, price_fen_per_kwh: 100}]
gateways: [{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1, timeout: 0.5, baudrate: 9600, parity: E}]
devices:
  - {id: r101-meter, model: dlt645-2007-single-phase, gateway: floor1, address: "000000009101", building: dorm-9,
     floor: 1, room: R101, poll_interval: 4}
rooms:
  - {id: R101, building: dorm-9, floor: 1, meter: r101-meter, tariff: dear}
"""


# The same meter behind a 4G DTU that dials in (the simulated campus runs the DTU).
DIAL_IN_INVENTORY = DLT645_INVENTORY.replace(
    "{id: floor1, type: rtu_over_tcp, host: 127.0.0.1, port: 1,",
    "{id: floor1, type: dial_in, host: 127.0.0.1, port: PORT, registration: '868000001', heartbeat: FE,",
)
assert "dial_in" in DIAL_IN_INVENTORY


@pytest.mark.parametrize(
    ("text", "relay"),
    [(INVENTORY, "r101-relay"), (DLT645_INVENTORY, "r101-meter"), (DIAL_IN_INVENTORY, "r101-meter")],
    ids=["modbus", "dlt645", "dlt645-dial-in"],
)
async def test_a_room_that_runs_out_is_cut_and_a_top_up_restores_it(tmp_path: Path, text: str, relay: str) -> None:
    (tmp_path / "devices.yaml").write_text(text.replace("PORT", str(free_port())), encoding="utf-8")
    inventory = load_inventory(tmp_path / "devices.yaml")
    zone = ZoneInfo("Asia/Shanghai")
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'houqin.sqlite3'}")
    await upgrade_database(database)
    await ensure_wallets(database, ["R101"])
    async with database.session() as session:
        await post(session, "R101", "adjustment", 3, datetime.now(UTC), key="opening", cause="test")
        await session.commit()
    settings = Settings(data_dir=tmp_path, timezone=zone.key, payments=PaymentSettings(sandbox=True),
                        dlt645=Dlt645Settings(password=SecretStr("314159")))  # fmt: skip
    roles = {ProcessRole.COLLECT, ProcessRole.BILLING}
    async with assemble(settings, inventory, roles=roles, simulate=True, database=database,
                        tuning=Tuning(command_backoff_s=0.1)) as houqin:  # fmt: skip
        assert houqin.simulator is not None
        stop = asyncio.Event()
        running = asyncio.create_task(houqin.run(stop))
        try:
            await _run_down_and_top_up(houqin, relay)
        finally:
            stop.set()
            await running
    await database.close()


async def _run_down_and_top_up(houqin: Houqin, relay_id: str) -> None:
    database, commands = houqin.database, houqin.commands
    assert houqin.simulator is not None
    relay, meter = houqin.simulator.devices[relay_id], houqin.simulator.devices["r101-meter"]
    if relay is meter:
        # A DL/T 645 meter counts in steps of 0.01 kWh, minutes apart under a dorm's load: this one is made
        # to use about 0.01 kWh (1 fen here) more per poll (six reads, 4 s: 9 kW) while its relay is closed.
        physics, used = meter.refresh, [0.0]

        def busy(target: Any) -> None:
            assert physics is not None
            physics(target)
            used[0] += 0.01 / 6 if target.values["relay_closed"] else 0.0
            target.values["energy"] = float(target.values["energy"]) + used[0]

        meter.refresh = busy

    async def wallet() -> Wallet:
        async with database.session() as session:
            found = await session.get(Wallet, "R101")
            assert found is not None
            return found

    async def wait(condition, what: str, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.1)

    await wait(lambda: not relay.values["relay_closed"], "the relay was not cut when the money ran out")
    await wait(lambda: meter.values["power"] == 0, "the meter still draws power")
    drained = await wallet()
    assert drained.state == "cut_off" and drained.balance_fen <= 0
    # A sandbox top-up: an order, then the provider's signed notification, delivered twice.
    async with database.session() as session:
        order = PaymentOrder(room="R101", provider="sandbox", amount_fen=2000, state="created", requested_by="s1",
                             idempotency_key="campus-1", created_at=datetime.now(UTC))  # fmt: skip
        session.add(order)
        await session.commit()
    desk = houqin.payments  # the process's own desk, its sandbox provider enabled by the settings
    sandbox = desk.providers["sandbox"]
    paid = await sandbox.checkout(order)
    headers = {"x-sandbox-signature": paid["signature"]}
    assert await desk.apply("sandbox", headers, paid["notification"].encode(), datetime.now(UTC))
    assert not await desk.apply("sandbox", headers, paid["notification"].encode(), datetime.now(UTC))
    await wait(lambda: relay.values["relay_closed"], "the relay was not restored after the top-up")
    await wait(lambda: meter.values["power"] > 0, "the power did not return")
    restored = await wallet()
    assert restored.state == "normal" and 0 < restored.balance_fen <= 2000
    deadline = time.monotonic() + 30  # a 645 close is confirmed once status word 3 shows it: a moment later
    while (await commands.recent(relay_id))[0].state != "confirmed":
        assert time.monotonic() < deadline, "the restore was not confirmed"
        await asyncio.sleep(0.1)
    [cut, restore] = sorted(await commands.recent(relay_id), key=lambda c: c.id)
    assert (cut.action, cut.source, cut.state) == ("off", "billing", "confirmed")
    assert (restore.action, restore.state) == ("on", "confirmed")
