"""Energy by building, category and sub-item over a day, month or year, with intensities, standard coal,
CO2 and comparisons; and the metering-tree balance. Staff and admins."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status

from api.bounds import Day
from api.deps import InventoryDep, ScheduleBookDep, SettingsDep, StaffUser, TelemetryDep, TimezoneDep
from api.energy_schemas import AmountsOut, BalanceOut, BuildingEnergyOut, CategoryOut, EnergyOut
from houqin.energy.export import report_title, to_csv, to_xlsx
from houqin.energy.report import (
    EnergyPeriod,
    EnergyReport,
    Line,
    PeriodError,
    Span,
    code_name,
    energy_report,
    intensity,
    merged,
    period_start,
    shifted,
    term_spans,
    tree_balance,
    year_before,
)
from houqin.inventory import Inventory
from houqin.inventory.energy import UNITS, category_of
from houqin.settings import Settings
from houqin.telemetry import SeriesUnavailable

router = APIRouter(prefix="/api/v1/energy", tags=["energy"])

Code = Annotated[str, Query(pattern=r"^0[1-6]000$", description="a category: 01000 electricity, 02000 water, ...")]


def _amounts(line: Line) -> AmountsOut:
    category = category_of(line.code[:5])
    return AmountsOut(code=line.code, name=code_name(line.code), unit=UNITS.get(category, ""),
                      total=round(line.total, 3), amounts=[None if a is None else round(a, 3) for a in line.amounts],
                      gaps=line.gaps, meters=line.meters)  # fmt: skip


def _buildings(inventory: Inventory, building: str | None) -> list[str]:
    known = inventory.building_names()
    if building is None:
        return known
    if building not in known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no building {building!r}; buildings: {', '.join(known)}")
    return [building]


def _category(line_total: float, code: str, area: float | None, people: int | None, settings: Settings,
              previous: float | None, last_year: float | None, base: AmountsOut) -> CategoryOut:  # fmt: skip
    figures = intensity(line_total, code, area, people, settings.energy.kgce_per_kwh, settings.energy.co2_kg_per_kwh)
    return CategoryOut(**base.model_dump(), per_m2=figures.per_m2, per_occupant=figures.per_occupant,
                       kgce=figures.kgce, co2_kg=figures.co2_kg, previous=previous, last_year=last_year)  # fmt: skip


async def _report(
    telemetry: TelemetryDep, inventory: Inventory, period: EnergyPeriod, day: date, tz: TimezoneDep,
    buildings: Sequence[str] | None, span: Span | None = None,
) -> EnergyReport:  # fmt: skip
    """The report, or a 422 saying why there is none (a period not begun, older than the store keeps)."""
    try:
        return await energy_report(telemetry, inventory, period, day, tz, buildings=buildings, span=span)
    except (PeriodError, SeriesUnavailable) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


async def _earlier(
    telemetry: TelemetryDep, inventory: Inventory, period: EnergyPeriod, day: date, tz: TimezoneDep,
    buildings: Sequence[str], span: Span | None = None, windows: int | None = None,
) -> dict[tuple[str, str], float]:  # fmt: skip
    """The totals (building, category) of an earlier period, for comparison — of its first ``windows``
    windows only, when the period compared with is still in progress (the first 2 days of last month against
    the first 2 of this one); empty where the store cannot answer (older than it keeps)."""
    try:
        report = await energy_report(telemetry, inventory, period, day, tz, buildings=buildings, span=span)
    except (PeriodError, SeriesUnavailable):
        return {}
    # A period with no reading at all has nothing to compare with (None), which is not a zero.
    return {(line.building, line.code): round(sum(a for a in line.amounts[:windows] if a is not None), 3)
            for line in report.totals if any(amount is not None for amount in line.amounts[:windows])}  # fmt: skip


async def _term(book: ScheduleBookDep, day: date) -> tuple[Span, Span | None]:
    """The school term holding ``day`` (the calendar's), and the one before it; 422 when none holds it."""
    try:
        return term_spans((await book.calendar()).terms, day)
    except PeriodError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None


async def _reports(
    telemetry: TelemetryDep, inventory: Inventory, book: ScheduleBookDep, period: EnergyPeriod, day: date,
    tz: TimezoneDep, chosen: Sequence[str],
) -> tuple[EnergyReport, dict[tuple[str, str], float], dict[tuple[str, str], float]]:  # fmt: skip
    """The period's report, and the totals of the period before and of the same period a year before."""
    span, before = await _term(book, day) if period == "term" else (None, None)
    report = await _report(telemetry, inventory, period, day, tz, chosen, span)
    now = datetime.now(UTC)
    started = sum(1 for start in report.boundaries[:-1] if start <= now)
    windows = started if started < len(report.boundaries) - 1 else None  # in progress: the same part of the other
    if span is not None:
        previous = await _earlier(telemetry, inventory, period, day, tz, chosen, before, windows) if before else {}
        last_year = await _earlier(telemetry, inventory, period, day, tz, chosen, span.year_before(), windows)
    else:
        back = shifted(period, period_start(period, day), 1)
        previous = await _earlier(telemetry, inventory, period, back, tz, chosen, windows=windows)
        last_year = await _earlier(telemetry, inventory, period, year_before(period, day), tz, chosen, windows=windows)
    return report, previous, last_year


@router.get("", response_model=EnergyOut, summary="Energy by building, category and sub-item for a period (staff)")
async def read_energy(
    user: StaffUser, telemetry: TelemetryDep, inventory: InventoryDep, settings: SettingsDep, timezone: TimezoneDep,
    book: ScheduleBookDep,
    period: Annotated[Literal["day", "month", "year", "term"], Query(description="term: the calendar's")] = "month",
    day: Annotated[Day | None, Query(alias="date", description="a day of the period; default today")] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
    category: Code | None = None,
) -> EnergyOut:  # fmt: skip
    day = day or datetime.now(timezone).date()
    chosen = _buildings(inventory, building)
    report, previous, last_year = await _reports(telemetry, inventory, book, period, day, timezone, chosen)
    wanted = [line for line in report.totals if category is None or line.code == category]
    out_buildings = []
    for name in chosen:
        info = inventory.buildings.get(name)
        area, people = (info.floor_area_m2, info.occupants) if info else (None, None)
        lines = [line for line in wanted if line.building == name]
        if not lines:
            continue
        out_buildings.append(BuildingEnergyOut(
            id=name, name=info.name if info and info.name else name, floor_area_m2=area, occupants=people,
            categories=[_category(line.total, line.code, area, people, settings, previous.get((name, line.code)),
                                  last_year.get((name, line.code)), _amounts(line)) for line in lines],
            sub_items=[_amounts(line) for line in report.sub_items if line.building == name
                       and (category is None or category_of(line.code[:5]) == category)],
        ))  # fmt: skip
    campus = []
    for code in sorted({line.code for line in wanted}):
        lines = [line for line in wanted if line.code == code]
        campus_line = merged("campus", code, lines, len(report.boundaries) - 1)
        measured = [inventory.buildings.get(line.building) for line in lines]
        area = sum(b.floor_area_m2 for b in measured if b and b.floor_area_m2) if all(
            b and b.floor_area_m2 for b in measured) else None  # fmt: skip
        people = sum(b.occupants for b in measured if b and b.occupants) if all(
            b and b.occupants for b in measured) else None  # fmt: skip
        prior = [previous.get((line.building, code)) for line in lines]
        a_year_ago = [last_year.get((line.building, code)) for line in lines]
        campus.append(_category(campus_line.total, code, area, people, settings,
                                None if None in prior else round(sum(p for p in prior if p is not None), 3),
                                None if None in a_year_ago else round(sum(p for p in a_year_ago if p is not None), 3),
                                _amounts(campus_line)))  # fmt: skip
    windows = [moment.astimezone(timezone) for moment in report.boundaries]
    return EnergyOut(period=period, date=windows[0].date(), windows=windows[:-1], end=windows[-1], campus=campus,
                     buildings=out_buildings)  # fmt: skip


@router.get(
    "/balance", response_model=list[BalanceOut],
    summary="Each meter against the meters hanging from it, over a period: the unaccounted share (staff)",
)  # fmt: skip
async def read_balance(
    user: StaffUser, telemetry: TelemetryDep, inventory: InventoryDep, timezone: TimezoneDep,
    period: Annotated[Literal["day", "month", "year"], Query()] = "month",
    day: Annotated[Day | None, Query(alias="date")] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
) -> list[BalanceOut]:  # fmt: skip
    day = day or datetime.now(timezone).date()
    chosen = _buildings(inventory, building) if building else None
    report = await _report(telemetry, inventory, period, day, timezone, chosen)
    return [BalanceOut(meter=b.meter, building=b.building, parent_total=round(b.parent_total, 3),
                       children_total=round(b.children_total, 3), children=b.children,
                       unaccounted=round(b.unaccounted, 3), share=None if b.share is None else round(b.share, 4),
                       complete=b.complete) for b in tree_balance(report.uses, datetime.now(UTC))]  # fmt: skip


@router.get(
    "/report",
    summary="The energy report as a file: CSV (UTF-8 with BOM) or XLSX, the same figures as GET /energy (staff)",
    response_class=Response,
)
async def download_report(
    user: StaffUser, telemetry: TelemetryDep, inventory: InventoryDep, settings: SettingsDep, timezone: TimezoneDep,
    book: ScheduleBookDep,
    period: Annotated[Literal["day", "month", "year", "term"], Query()] = "month",
    day: Annotated[Day | None, Query(alias="date")] = None,
    building: Annotated[str | None, Query(max_length=64)] = None,
    format: Annotated[Literal["csv", "xlsx"], Query()] = "xlsx",
) -> Response:  # fmt: skip
    day = day or datetime.now(timezone).date()
    chosen = _buildings(inventory, building)
    span = (await _term(book, day))[0] if period == "term" else None
    report = await _report(telemetry, inventory, period, day, timezone, chosen, span)
    start = report.boundaries[0].astimezone(timezone)
    name = f"houqin-energy-{start:%Y-%m-%d}-{period}{'-' + building if building else ''}.{format}"
    if format == "csv":
        body, media = to_csv(report, inventory, settings.energy, timezone), "text/csv; charset=utf-8"
    else:
        title = report_title(report, timezone, datetime.now(UTC))
        body = to_xlsx(report, inventory, settings.energy, timezone, title)
        media = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
