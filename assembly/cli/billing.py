"""``houqin billing``: prepaid electricity chores done from the command line."""

from __future__ import annotations

import asyncio
import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from assembly.cli.common import fail, inventory_or_exit, opened_database, site_settings_or_exit
from houqin.billing.opening import OpeningError, OpeningResult, post_opening_balances, read_balances
from houqin.billing.policy import PowerPolicy
from houqin.commands import CommandQueue
from houqin.settings import Settings

app = typer.Typer(help="Prepaid electricity: balances brought from the previous system.", no_args_is_help=True)


@app.command("import-balances")
def import_balances(
    path: Annotated[
        Path,
        typer.Argument(
            help="CSV (UTF-8 or GB18030) or XLSX: columns room and balance_yuan (or 房间, 余额) or balance_fen; "
            "optionally free_used_kwh (已用免费电量): this month's free allowance used in the previous system"
        ),
    ],
    force_reason: Annotated[
        str | None,
        typer.Option(
            help="Add opening balances to rooms houqin has already charged, for this reason (kept in each entry)"
        ),
    ] = None,
    operator: Annotated[str | None, typer.Option(help="Who imports (recorded; default: the login name)")] = None,
) -> None:
    """Post every room's balance from the previous prepaid system as an audited opening entry: all rows or
    none, each problem as file:line; running the same file again posts nothing new."""
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    settings = site_settings_or_exit(settings, inventory)
    if force_reason is not None and len(force_reason.strip()) < 3:
        raise fail("--force-reason: say why (at least 3 characters)")
    try:
        balances = read_balances(path, inventory)
    except OpeningError as error:
        raise fail(f"{error}\nnothing was imported") from None
    who = operator or getpass.getuser()

    async def work() -> OpeningResult:
        database = await opened_database(settings)
        try:
            # The policy's relay commands (a room in arrears is cut) go into the same transaction.
            policy = PowerPolicy(inventory, CommandQueue(database, inventory), settings.billing, settings.tz, database)
            async with database.session() as session:
                now = datetime.now(UTC)
                result = await post_opening_balances(session, policy, balances, now, source=path.name, operator=who,
                                                     force_reason=force_reason,
                                                     month=now.astimezone(settings.tz).strftime("%Y-%m"))  # fmt: skip
                await session.commit()
                return result
        finally:
            await database.close()

    try:
        result = asyncio.run(work())
    except OpeningError as error:
        raise fail(f"{error}\nnothing was imported") from None
    total = sum(balance.fen for balance in balances if balance.room in set(result.posted))
    typer.echo(f"imported {len(result.posted)} opening balances ({total / 100:.2f} yuan in all); "
               f"{len(result.already)} were imported before with the same balance")  # fmt: skip
