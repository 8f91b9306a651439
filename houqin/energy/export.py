"""An energy report as a file: CSV (UTF-8 with a byte-order mark, so Chinese spreadsheet software opens it
right) or XLSX (a campus sheet and a sheet per building, units in the headers). The figures are the
API's: the same report, the same rounding. A meter that was not read shows as gaps, counted in a column,
and an empty cell where no meter was read — never as a zero."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font

from houqin.energy.report import UNACCOUNTED, EnergyReport, Line, code_name, intensity
from houqin.inventory import Inventory
from houqin.inventory.energy import UNITS, category_of
from houqin.settings import EnergySettings

HEAD = ["楼栋 building", "行 row", "分类分项 code", "名称 item", "单位 unit", "合计 total", "单位面积 per m²",
        "人均 per person", "标准煤 kgce", "CO₂ kg", "缺数 gaps", "表数 meters"]  # fmt: skip


@dataclass(frozen=True)
class ReportRow:
    building: str
    row: str  # total (a category, its root meters) | sub_item (leaf meters, or the unaccounted rest)
    code: str
    item: str
    unit: str
    total: float
    per_m2: float | None
    per_occupant: float | None
    kgce: float | None
    co2_kg: float | None
    gaps: int
    meters: int
    amounts: list[float | None]

    def cells(self) -> list[object]:
        return [self.building, self.row, self.code, self.item, self.unit, self.total, self.per_m2, self.per_occupant,
                self.kgce, self.co2_kg, self.gaps, self.meters, *self.amounts]  # fmt: skip


def _item(code: str) -> str:
    name = code_name(code)
    return f"未计量部分 {name}" if name == UNACCOUNTED else name


def report_rows(report: EnergyReport, inventory: Inventory, energy: EnergySettings) -> list[ReportRow]:
    """Per building: each category (with intensities), then its sub-items and unaccounted rest."""
    rows = []
    for building in sorted({line.building for line in report.totals}):
        info = inventory.buildings.get(building)
        area, people = (info.floor_area_m2, info.occupants) if info else (None, None)
        name = info.name if info and info.name else building
        lines: list[tuple[Line, bool]] = [(line, True) for line in report.totals if line.building == building]
        lines += [(line, False) for line in report.sub_items if line.building == building]
        for line, is_total in lines:
            category = category_of(line.code[:5])
            total = round(line.total, 3)
            figures = intensity(total, line.code, area, people, energy.kgce_per_kwh, energy.co2_kg_per_kwh)
            rows.append(ReportRow(
                name, "total" if is_total else "sub_item", line.code, _item(line.code), UNITS.get(category, ""), total,
                figures.per_m2 if is_total else None, figures.per_occupant if is_total else None,
                figures.kgce if is_total else None, figures.co2_kg if is_total else None, line.gaps, line.meters,
                [None if amount is None else round(amount, 3) for amount in line.amounts],
            ))  # fmt: skip
    return rows


def _windows(report: EnergyReport, timezone: ZoneInfo) -> list[str]:
    form = {"day": "%H:00", "month": "%m-%d", "year": "%Y-%m", "term": "%m-%d"}[report.period]
    return [moment.astimezone(timezone).strftime(form) for moment in report.boundaries[:-1]]


def to_csv(report: EnergyReport, inventory: Inventory, energy: EnergySettings, timezone: ZoneInfo) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*HEAD, *_windows(report, timezone)])
    for row in report_rows(report, inventory, energy):
        writer.writerow(["" if cell is None else cell for cell in row.cells()])
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def to_xlsx(
    report: EnergyReport, inventory: Inventory, energy: EnergySettings, timezone: ZoneInfo, title: str
) -> bytes:
    workbook = Workbook()
    windows = _windows(report, timezone)
    rows = report_rows(report, inventory, energy)
    sheets: dict[str, list[ReportRow]] = {"全校 Campus": [row for row in rows if row.row == "total"]}
    for row in rows:
        sheets.setdefault(row.building[:31], []).append(row)
    first = True
    for name, members in sheets.items():
        sheet = workbook.active if first else workbook.create_sheet()
        assert sheet is not None
        first = False
        sheet.title = name[:31]
        sheet.append([title])
        sheet["A1"].font = Font(bold=True)
        sheet.append([*HEAD, *windows])
        for cell in sheet[2]:
            cell.font = Font(bold=True)
        for row in members:
            sheet.append(row.cells())
        sheet.freeze_panes = "F3"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def report_title(report: EnergyReport, timezone: ZoneInfo, made: datetime) -> str:
    start = report.boundaries[0].astimezone(timezone)
    last = (report.boundaries[-1].astimezone(timezone) - timedelta(days=1)).date()
    period = {"day": f"{start:%Y-%m-%d}", "month": f"{start:%Y-%m}", "year": f"{start:%Y}",
              "term": f"{start:%Y-%m-%d} – {last}"}[report.period]  # fmt: skip
    return f"能耗报表 Energy report {period} (made {made.astimezone(timezone):%Y-%m-%d %H:%M})"
