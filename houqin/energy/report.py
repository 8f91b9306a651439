"""Energy by building, category and sub-item (分类分项) over a period, from the meters' own counters.

Every meter's use in a window is the advance of its cumulative register (``houqin.telemetry.usage``), so
the figures are the same from the embedded store and from InfluxDB. A building's total in a category is
the sum of its *root* meters (those whose parent is not in the building: its main meters, or its room
meters where there is no main meter), so a sub-meter under a main meter is not counted twice. The
sub-items are the sum of the *leaf* meters (those no other meter hangs from) by their codes; what a root
measured and no leaf accounts for is shown as ``unaccounted`` (losses, an unmetered load, a broken
sub-meter). A window a meter has no reading for is a gap: counted, and shown, never read as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from houqin.inventory import Inventory
from houqin.inventory.energy import CATEGORY_NAMES, CUMULATIVE_FIELD, SUB_ITEM_NAMES, category_of, sub_item_of
from houqin.schedules.calendar import Term
from houqin.telemetry.model import TelemetryStore
from houqin.telemetry.usage import Usage, UsageWindow, energy_usages, usage_boundaries

EnergyPeriod = Literal["day", "month", "year", "term"]
UNACCOUNTED = "unaccounted"


class PeriodError(ValueError):
    """A period that cannot be reported: in the future, or not a date."""


def period_boundaries(period: EnergyPeriod, day: date, timezone: ZoneInfo) -> list[datetime]:
    """Window edges in UTC: the hours of a day, the days of a month, or the months of a year."""
    if period in ("day", "month"):
        return usage_boundaries(period, day, timezone)
    return [datetime.combine(date(day.year + month // 12, month % 12 + 1, 1), time(), timezone).astimezone(UTC)
            for month in range(13)]  # fmt: skip


@dataclass(frozen=True)
class Span:
    """Whole local days from ``first`` to ``last`` (inclusive): a school term."""

    first: date
    last: date

    def boundaries(self, timezone: ZoneInfo) -> list[datetime]:
        days = (self.last - self.first).days + 2
        return [datetime.combine(self.first + timedelta(days=k), time(), timezone).astimezone(UTC) for k in range(days)]

    def year_before(self) -> Span:
        return Span(_a_year_before(self.first), _a_year_before(self.last))


def term_spans(terms: Sequence[Term], day: date | None = None, name: str | None = None) -> tuple[Span, Span | None]:
    """The school term named ``name`` or holding ``day``, and the one before it; ``PeriodError`` naming the
    calendar's terms when none is."""
    ordered = sorted(terms, key=lambda term: term.start)
    index = next((i for i, term in enumerate(ordered) if term.name == name or (name is None and day in term)), None)
    if index is None:
        names = ", ".join(f"{t.name} ({t.start}–{t.end})" for t in ordered) or "none in the calendar"
        wanted = f"no term {name!r}" if name is not None else f"no term holds {day}"
        raise PeriodError(f"{wanted}; terms: {names}")
    before = ordered[index - 1] if index > 0 else None
    return Span(ordered[index].start, ordered[index].end), Span(before.start, before.end) if before else None


def _a_year_before(day: date) -> date:
    return day.replace(year=day.year - 1, day=min(day.day, 28) if day.month == 2 else day.day)


def period_start(period: EnergyPeriod, day: date) -> date:
    return day if period == "day" else day.replace(day=1) if period == "month" else date(day.year, 1, 1)


def shifted(period: EnergyPeriod, day: date, back: int) -> date:
    """The same period ``back`` periods before (a day, a month, a year), clamped to the month's length."""
    if period == "day":
        return date.fromordinal(day.toordinal() - back)
    if period == "year":
        return date(day.year - back, 1, 1)
    months = day.year * 12 + day.month - 1 - back
    return date(months // 12, months % 12 + 1, 1)


def year_before(period: EnergyPeriod, day: date) -> date:
    """A day of the same period one year before (the 29th of February falls on the 28th)."""
    return _a_year_before(period_start(period, day))


@dataclass(frozen=True)
class MeteredUse:
    meter: str
    building: str
    code: str  # its energy code
    parent: str | None
    usage: Usage

    @property
    def windows(self) -> list[UsageWindow]:
        return self.usage.windows()

    def total(self, now: datetime) -> tuple[float, bool]:
        """What it used in the windows begun by ``now``, and whether it was read in every one of them."""
        started = sum(1 for start in self.usage.boundaries[:-1] if start <= now)
        kwh, read = self.usage.kwh[:started], self.usage.read[:started]
        return sum(k for k in kwh if k is not None), all(k is not None for k in kwh) and all(read)


@dataclass
class Line:
    """Amounts per window for one building and one code (a category, a sub-item, or ``unaccounted``)."""

    building: str
    code: str
    amounts: list[float | None]
    gaps: int = 0  # meter-windows without a reading
    meters: int = 0

    @property
    def total(self) -> float:
        return sum(amount for amount in self.amounts if amount is not None)


@dataclass
class EnergyReport:
    period: EnergyPeriod
    boundaries: list[datetime]
    totals: list[Line] = field(default_factory=list)  # per building and category (root meters)
    sub_items: list[Line] = field(default_factory=list)  # per building and sub-item (leaf meters), and unaccounted
    uses: list[MeteredUse] = field(default_factory=list)


async def meter_uses(
    store: TelemetryStore, inventory: Inventory, boundaries: list[datetime], now: datetime,
    buildings: Sequence[str] | None = None,
) -> list[MeteredUse]:  # fmt: skip
    """Every energy meter's use per window (of ``buildings``, or the campus)."""
    meters = []
    for device in inventory.devices.values():
        code = inventory.energy_code(device)  # None for a device that counts no energy up
        if code is None or (buildings is not None and device.building not in buildings):
            continue
        meters.append((device, code, inventory.model_of(device).kind))
    usages: dict[str, Usage] = {}
    for kind in sorted({kind for _, _, kind in meters}):  # one query per measurement
        ids = [device.id for device, _, of in meters if of == kind]
        usages.update(await energy_usages(store, ids, boundaries, now, CUMULATIVE_FIELD[kind], kind))
    return [MeteredUse(device.id, device.building, code, device.parent, usages[device.id])
            for device, code, _ in meters]  # fmt: skip


def merged(building: str, code: str, lines: Sequence[Line], count: int) -> Line:
    """``lines`` added window by window (a window none of them has an amount for stays empty)."""
    out = Line(building, code, [None] * count, sum(line.gaps for line in lines), sum(line.meters for line in lines))
    for line in lines:
        for index, amount in enumerate(line.amounts):
            if amount is not None:
                out.amounts[index] = (out.amounts[index] or 0.0) + amount
    return out


def code_name(code: str) -> str:
    """What a code counts, in words: a sub-item, a category, or the unaccounted rest of one."""
    if code.endswith(UNACCOUNTED):
        return UNACCOUNTED
    return SUB_ITEM_NAMES.get(code) or CATEGORY_NAMES.get(code) or code


def _add(line: Line, usage: Usage, started: int) -> None:
    line.meters += 1
    amounts = line.amounts
    for index in range(started):  # a window ahead has no gap, and nothing yet
        kwh = usage.kwh[index]
        if kwh is None:
            line.gaps += 1
        else:
            if not usage.read[index]:
                line.gaps += 1  # silent: what it used shows in the window it is read again
            previous = amounts[index]
            amounts[index] = kwh if previous is None else previous + kwh


def summarize(period: EnergyPeriod, boundaries: list[datetime], uses: list[MeteredUse], now: datetime) -> EnergyReport:
    count = len(boundaries) - 1
    started = sum(1 for start in boundaries[:-1] if start <= now)
    in_building = {(use.building, use.meter) for use in uses}
    parents = {use.parent for use in uses if use.parent is not None}
    totals: dict[tuple[str, str], Line] = {}
    leaves: dict[tuple[str, str], Line] = {}
    trees: set[tuple[str, str]] = set()  # (building, category) where meters hang from meters of the building
    for use in uses:
        category = category_of(use.code)
        if use.parent is None or (use.building, use.parent) not in in_building:
            _add(totals.setdefault((use.building, category), Line(use.building, category, [None] * count)),
                 use.usage, started)  # fmt: skip
        else:
            trees.add((use.building, category))
        if use.meter not in parents:
            item = sub_item_of(use.code)
            _add(leaves.setdefault((use.building, item), Line(use.building, item, [None] * count)), use.usage, started)
    unaccounted = []
    for building, category in sorted(trees):
        total = totals[(building, category)]
        items = [line for (b, code), line in leaves.items() if b == building and category_of(code) == category]
        amounts: list[float | None] = []
        for index in range(count):
            root = total.amounts[index]
            below = sum(line.amounts[index] or 0.0 for line in items)
            amounts.append(None if root is None else root - below)
        unaccounted.append(Line(building, f"{category}:{UNACCOUNTED}", amounts))
    report = EnergyReport(period, boundaries, uses=uses)
    report.totals = sorted(totals.values(), key=lambda line: (line.building, line.code))
    report.sub_items = sorted([*leaves.values(), *unaccounted], key=lambda line: (line.building, line.code))
    return report


async def energy_report(
    store: TelemetryStore, inventory: Inventory, period: EnergyPeriod, day: date, timezone: ZoneInfo,
    now: datetime | None = None, buildings: Sequence[str] | None = None, span: Span | None = None,
) -> EnergyReport:  # fmt: skip
    """The report of the period containing ``day`` (a term: ``span``); ``PeriodError`` for a period that has
    not begun."""
    now = now or datetime.now(UTC)
    if period == "term":
        if span is None:
            raise PeriodError("a term report needs the term's days")
        boundaries = span.boundaries(timezone)
    else:
        boundaries = period_boundaries(period, period_start(period, day), timezone)
    if boundaries[0] > now:
        raise PeriodError(f"the {period} of {day} has not begun")
    return summarize(period, boundaries, await meter_uses(store, inventory, boundaries, now, buildings), now)


@dataclass(frozen=True)
class Balance:
    """A meter against the meters hanging from it, over a period."""

    meter: str
    building: str
    parent_total: float
    children_total: float
    children: int
    complete: bool  # every window of the parent and of every child had a reading

    @property
    def unaccounted(self) -> float:
        return self.parent_total - self.children_total

    @property
    def share(self) -> float | None:
        """The part of the parent's use no child accounts for (losses, an unmetered load, theft)."""
        return None if self.parent_total <= 0 else self.unaccounted / self.parent_total


def tree_balance(uses: list[MeteredUse], now: datetime) -> list[Balance]:
    by_meter = {use.meter: use for use in uses}
    children: dict[str, list[MeteredUse]] = {}
    for use in uses:
        if use.parent is not None and use.parent in by_meter:
            children.setdefault(use.parent, []).append(use)

    balances = []
    for meter, below in sorted(children.items()):
        parent_total, parent_complete = by_meter[meter].total(now)
        sums = [child.total(now) for child in below]
        balances.append(Balance(meter, by_meter[meter].building, parent_total, sum(t for t, _ in sums), len(below),
                                parent_complete and all(complete for _, complete in sums)))  # fmt: skip
    return balances


@dataclass(frozen=True)
class Intensity:
    per_m2: float | None
    per_occupant: float | None
    kgce: float | None  # electricity only
    co2_kg: float | None


def intensity(
    total: float, code: str, area: float | None, people: int | None, kgce_per_kwh: float, co2_per_kwh: float
) -> Intensity:
    """A period's total per m² and per person, and, for electricity, as standard coal and CO2."""
    electricity = code == "01000"
    return Intensity(
        per_m2=round(total / area, 4) if area else None,
        per_occupant=round(total / people, 4) if people else None,
        kgce=round(total * kgce_per_kwh, 3) if electricity else None,
        co2_kg=round(total * co2_per_kwh, 3) if electricity else None,
    )
