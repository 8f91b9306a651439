"""Pricing energy by tariff: a window of use is split over the tariff's time-of-use periods in proportion
to the time it spent in each, and priced in micro-fen (a millionth of a fen) so that rounding to whole
fen happens once, in the ledger, with the remainder carried to the next charge."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from houqin.daily_span import within
from houqin.inventory.model import Tariff

MICRO = 1_000_000  # micro-fen per fen


@dataclass(frozen=True)
class PricedSlice:
    period: str  # "flat" or the period's name
    kwh: float
    price_fen_per_kwh: int
    cost_micro_fen: int


def _period_edges(tariff: Tariff, start: datetime, end: datetime, timezone: ZoneInfo) -> list[datetime]:
    """Every instant in (start, end) where the price may change."""
    first: date = start.astimezone(timezone).date() - timedelta(days=1)
    last: date = end.astimezone(timezone).date() + timedelta(days=1)
    edges = set()
    day = first
    while day <= last:
        for period in tariff.periods:
            edge = datetime.combine(day, period.start, timezone)
            if start < edge < end:
                edges.add(edge)
        day += timedelta(days=1)
    return sorted(edges)


def _period_at(tariff: Tariff, moment: datetime, timezone: ZoneInfo) -> tuple[str, int]:
    local = moment.astimezone(timezone).time()
    for period in tariff.periods:
        if within(local, period.start, period.end):
            return period.name, period.price_fen_per_kwh
    raise AssertionError("tariff periods cover the whole day")  # checked when the inventory is loaded


def price_usage(tariff: Tariff, start: datetime, end: datetime, kwh: float, timezone: ZoneInfo) -> list[PricedSlice]:
    """``kwh`` used between ``start`` and ``end``, split by tariff period and priced."""
    if tariff.price_fen_per_kwh is not None or end <= start:
        price = (
            tariff.price_fen_per_kwh if tariff.price_fen_per_kwh is not None else _period_at(tariff, end, timezone)[1]
        )
        name = "flat" if tariff.price_fen_per_kwh is not None else _period_at(tariff, end, timezone)[0]
        return [PricedSlice(name, kwh, price, round(kwh * price * MICRO))]
    seconds: dict[str, float] = {}
    prices: dict[str, int] = {}
    bounds = [start, *_period_edges(tariff, start, end, timezone), end]
    for left, right in itertools.pairwise(bounds):
        name, price = _period_at(tariff, left + (right - left) / 2, timezone)
        seconds[name] = seconds.get(name, 0.0) + (right - left).total_seconds()
        prices[name] = price
    total = sum(seconds.values())
    slices = []
    for name, spent in seconds.items():
        share = kwh * spent / total
        slices.append(PricedSlice(name, share, prices[name], round(share * prices[name] * MICRO)))
    return slices
