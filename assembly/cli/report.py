"""``houqin report``: reports as files, the same figures as the API's."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from assembly.cli.common import fail, inventory_or_exit, opened_database, site_settings_or_exit
from assembly.stores import telemetry_store
from houqin.energy.export import report_title, to_csv, to_xlsx
from houqin.energy.report import EnergyPeriod, PeriodError, Span, energy_report, term_spans
from houqin.inventory import Inventory
from houqin.schedules.book import ScheduleBook
from houqin.settings import Settings
from houqin.telemetry import SeriesUnavailable
from houqin.telemetry.embedded_store import EmbeddedStore

app = typer.Typer(help="Reports as files.", no_args_is_help=True)


def _period(day: str | None, month: str | None, year: str | None, term: str | None) -> tuple[EnergyPeriod, date]:
    """The period asked for and a day in it (a term: today, the term's own days come from the calendar)."""
    options = (("day", day), ("month", month), ("year", year), ("term", term))
    given = [(name, value) for name, value in options if value is not None]
    if len(given) != 1:
        raise fail("give exactly one of --day YYYY-MM-DD, --month YYYY-MM, --year YYYY, --term NAME|YYYY-MM-DD")
    name, value = given[0]
    if name == "term":
        return "term", date.today()  # the term's first day once the calendar has been read
    forms = {"day": ("%Y-%m-%d", "2026-11-23"), "month": ("%Y-%m", "2026-11"), "year": ("%Y", "2026")}
    form, example = forms[name]
    try:
        parsed = datetime.strptime(value or "", form).date()
    except ValueError:
        raise fail(f"--{name}: {value!r} is not a {name} like {example}") from None
    period: EnergyPeriod = "day" if name == "day" else "month" if name == "month" else "year"
    return period, parsed


@app.command("energy")
def energy(
    day: Annotated[str | None, typer.Option(help="A day: YYYY-MM-DD")] = None,
    month: Annotated[str | None, typer.Option(help="A month: YYYY-MM")] = None,
    year: Annotated[str | None, typer.Option(help="A year: YYYY")] = None,
    term: Annotated[
        str | None, typer.Option(help="A school term of the calendar: its name, or a day in it (YYYY-MM-DD)")
    ] = None,
    building: Annotated[str | None, typer.Option(help="One building (default: every building)")] = None,
    format: Annotated[Literal["csv", "xlsx"], typer.Option(help="csv (UTF-8 with BOM) or xlsx")] = "xlsx",
    output: Annotated[Path | None, typer.Option(help="Where to write (default: houqin-energy-….csv|xlsx here)")] = None,
) -> None:
    """Energy by building, category and sub-item for a day, month, year or school term, with intensities,
    coal and CO2, and the gaps of meters that did not answer — the figures of GET /api/v1/energy."""
    period, when = _period(day, month, year, term)
    settings = Settings()
    inventory = inventory_or_exit(settings.inventory)
    settings = site_settings_or_exit(settings, inventory)
    known = inventory.building_names()
    if building is not None and building not in known:
        raise fail(f"--building: no building {building!r}; buildings: {', '.join(known)}")

    span = asyncio.run(_term_span(settings, inventory, term)) if term is not None else None
    if span is not None:
        when = span.first

    async def work() -> bytes:
        store = telemetry_store(settings)
        if isinstance(store, EmbeddedStore):
            await store.open()
        try:
            report = await energy_report(store, inventory, period, when, settings.tz,
                                         buildings=[building] if building else None, span=span)  # fmt: skip
        finally:
            if isinstance(store, EmbeddedStore):
                await store.close()
        if format == "csv":
            return to_csv(report, inventory, settings.energy, settings.tz)
        title = report_title(report, settings.tz, datetime.now(UTC))
        return to_xlsx(report, inventory, settings.energy, settings.tz, title)

    try:
        body = asyncio.run(work())
    except PeriodError as error:
        raise fail(f"--{period}: {error}") from None
    except SeriesUnavailable as error:
        raise fail(str(error)) from None
    target = output or Path(f"houqin-energy-{when:%Y-%m-%d}-{period}{'-' + building if building else ''}.{format}")
    target.write_bytes(body)
    typer.echo(f"wrote {target} ({len(body)} bytes)")


async def _term_span(settings: Settings, inventory: Inventory, term: str) -> Span:
    """The calendar's term named ``term``, or holding the day ``term`` names."""
    try:
        day: date | None = date.fromisoformat(term)
    except ValueError:
        day = None
    database = await opened_database(settings)
    try:
        terms = (await ScheduleBook(database, inventory, settings.tz).calendar()).terms
    finally:
        await database.close()
    try:
        return term_spans(terms, day=day, name=None if day else term)[0]
    except PeriodError as error:
        raise fail(f"--term: {error}") from None
