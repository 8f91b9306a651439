"""What every command shares: failing with a message, logging, the inventory and rules loaded or a clear
exit, and a database opened for one piece of work."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from assembly.stores import SchemaBehindError, configured_database, open_database
from houqin.config_file import ConfigError
from houqin.inventory import Inventory, load_inventory
from houqin.inventory.timezone import TimezoneConflictError, with_site_timezone
from houqin.settings import Settings
from houqin.store import Database
from rules.loader import load_rules, rule_files
from rules.model import Rule

T = TypeVar("T")


def fail(message: str) -> typer.Exit:
    """Print ``message`` on stderr; the caller raises what this returns (exit status 1)."""
    typer.echo(message, err=True)
    return typer.Exit(1)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # pymodbus logs every timeout and failed connect itself, each with a dump of the last 20 frames on the
    # bus (mostly other meters'); houqin's links and pollers report the same once, with the device named.
    # Its own output is for debugging houqin's use of it.
    debugging = logging.getLogger().isEnabledFor(logging.DEBUG)
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if debugging else logging.CRITICAL + 1)
    for chatty in ("amqtt", "transitions"):  # the embedded broker logs every connection and state change
        logging.getLogger(chatty).setLevel(logging.WARNING)


def inventory_or_exit(path: Path) -> Inventory:
    try:
        return load_inventory(path)
    except ConfigError as error:
        count = len(error.issues)
        raise fail(f"{error}\n{path}: {count} error{'s' if count != 1 else ''}") from None


def site_settings_or_exit(settings: Settings, inventory: Inventory) -> Settings:
    """``settings`` with the campus's timezone (the inventory's), or exit naming both when they disagree."""
    try:
        return with_site_timezone(settings, inventory)
    except TimezoneConflictError as error:
        raise fail(str(error)) from None


def rules_or_exit(settings: Settings, inventory: Inventory, extra: Sequence[Path] = ()) -> list[Rule]:
    try:
        return load_rules(rule_files(settings.rule_files, extra), inventory)
    except ConfigError as error:
        count = len(error.issues)
        raise fail(f"{error}\nrule files: {count} error{'s' if count != 1 else ''}") from None


async def opened_database(settings: Settings) -> Database:
    """The configured database, upgraded if SQLite; a PostgreSQL schema behind this houqin is an exit."""
    try:
        return await open_database(settings)
    except SchemaBehindError as error:
        raise fail(str(error)) from None


async def on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """``work`` on the configured database as it is (no migration first), then the pool closed."""
    database = configured_database(settings)
    try:
        return await work(database)
    finally:
        await database.close()


async def in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work`` in one session of the opened database, committed if it returns."""
    database = await opened_database(settings)
    try:
        async with database.session() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await database.close()
