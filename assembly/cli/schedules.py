"""``houqin schedules``: lighting and broadcast schedules and the school calendar from files."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from assembly.cli.common import fail, inventory_or_exit, opened_database, setup_logging, site_settings_or_exit
from houqin import event_loop
from houqin.config_file import ConfigError
from houqin.schedules.book import ScheduleBook, ScheduleInvalidError, load_schedule_file
from houqin.schedules.calendar import load_calendar_file
from houqin.settings import Settings

T = TypeVar("T")
app = typer.Typer(help="Lighting and broadcast schedules and the school calendar.", no_args_is_help=True)


async def _with_book(settings: Settings, work: Callable[[ScheduleBook], Awaitable[T]]) -> T:
    inventory = inventory_or_exit(settings.inventory)
    settings = site_settings_or_exit(settings, inventory)
    database = await opened_database(settings)
    try:
        return await work(ScheduleBook(database, inventory, settings.tz))
    finally:
        await database.close()


@app.command("seed")
def schedules_seed(file: Annotated[Path, typer.Argument(help="YAML file with a schedules list")]) -> None:
    """Create or replace (by name) the schedules of a file; contradictions are reported and nothing is kept
    of a schedule that has them."""
    settings = Settings()
    setup_logging(settings.log_level)
    try:
        specs = load_schedule_file(file)
    except ConfigError as error:
        raise fail(str(error)) from None

    async def work(book: ScheduleBook) -> tuple[int, int]:
        return await book.seed(specs, "cli", datetime.now(UTC))

    try:
        created, replaced = event_loop.run(_with_book(settings, work))
    except ScheduleInvalidError as error:
        raise fail(f"{file}: {error}") from None
    typer.echo(f"{created} schedules created, {replaced} replaced")


@app.command("calendar")
def schedules_calendar(file: Annotated[Path, typer.Argument(help="YAML file with terms and days")]) -> None:
    """Import a school calendar: terms by name and days by date are added or replaced."""
    settings = Settings()
    setup_logging(settings.log_level)
    try:
        content = load_calendar_file(file)
    except ConfigError as error:
        raise fail(str(error)) from None

    async def work(book: ScheduleBook) -> None:
        await book.import_calendar(content)

    event_loop.run(_with_book(settings, work))
    typer.echo(f"{len(content.terms)} terms and {len(content.days)} days imported")
