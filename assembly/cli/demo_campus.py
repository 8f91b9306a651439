"""What the demo campus starts with: accounts for every role (random passwords, kept beside its database)
and an opening balance in every room."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from assembly.cli.common import opened_database
from houqin.accounts import NewAccount, add_account, generate_password
from houqin.billing.ledger import ensure_wallets, post
from houqin.inventory import Inventory
from houqin.settings import Settings
from houqin.store.tables import EntryKind, Role


async def demo_accounts(settings: Settings, inventory: Inventory) -> dict[str, str]:
    """Create the demo accounts once, with random passwords kept beside the demo database."""
    logins_file = settings.data_dir / "demo-logins.json"
    if logins_file.exists():
        logins: dict[str, str] = json.loads(logins_file.read_text(encoding="utf-8"))
        return logins
    database = await opened_database(settings)
    logins = {}
    # The first two rooms of whatever inventory the demo runs on, and a worker in every team so that the
    # orders the rules open are assigned ("worker" in the first team, "worker-<team>" in the others).
    rooms = sorted(inventory.rooms)[:2]
    accounts: list[tuple[str, Role, tuple[str, ...], str | None]] = [
        ("admin", Role.ADMIN, (), None),
        ("staff", Role.STAFF, (), None),
        ("cashier", Role.CASHIER, (), None),
    ]
    for index, team in enumerate(sorted(inventory.teams)):
        accounts.append(("worker" if index == 0 else f"worker-{team}", Role.WORKER, (), team))
    accounts += [(f"student{n or ''}", Role.STUDENT, (room,), None) for n, room in enumerate(rooms)]
    try:
        async with database.session() as session:
            for username, role, account_rooms, account_team in accounts:
                password = generate_password()
                await add_account(session, NewAccount(username, role, password, account_rooms, account_team), inventory)
                logins[username] = password
            await session.commit()
    finally:
        await database.close()
    logins_file.write_text(json.dumps(logins, indent=2), encoding="utf-8")
    logins_file.chmod(0o600)
    return logins


async def demo_balances(settings: Settings, inventory: Inventory, opening_fen: int = 5000) -> None:
    """Every demo room starts with 50 yuan (once: the entries are keyed), so the demo campus has light."""
    database = await opened_database(settings)
    try:
        await ensure_wallets(database, sorted(inventory.rooms))
        async with database.session() as session:
            now = datetime.now(UTC)
            for room in sorted(inventory.rooms):
                key, cause = f"demo:opening:{room}", "demo opening balance"
                await post(session, room, EntryKind.ADJUSTMENT, opening_fen, now, key=key, cause=cause)
            await session.commit()
    finally:
        await database.close()
