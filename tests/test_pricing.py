"""Tariffs: periods checked when loaded; usage split over time-of-use periods in proportion to time,
property-tested (every kWh priced once, splitting a window changes nothing, prices as declared)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from houqin.billing.pricing import MICRO, price_usage
from houqin.inventory.model import Tariff

TZ = ZoneInfo("Asia/Shanghai")
TOU = Tariff.model_validate({
    "id": "tou",
    "periods": [
        {"name": "peak", "start": "08:00", "end": "22:00", "price_fen_per_kwh": 62},
        {"name": "valley", "start": "22:00", "end": "08:00", "price_fen_per_kwh": 30},
    ],
})  # fmt: skip
FLAT = Tariff(id="flat", price_fen_per_kwh=56)


def test_periods_must_cover_the_day_once() -> None:
    with pytest.raises(ValidationError, match="60 minutes uncovered"):
        Tariff.model_validate({"id": "t", "periods": [
            {"name": "day", "start": "08:00", "end": "21:00", "price_fen_per_kwh": 60},
            {"name": "night", "start": "22:00", "end": "08:00", "price_fen_per_kwh": 30}]})  # fmt: skip
    with pytest.raises(ValidationError, match="either price_fen_per_kwh"):
        Tariff.model_validate({"id": "t"})


def test_a_window_across_a_period_edge_is_split_by_time() -> None:
    start = datetime(2026, 11, 23, 21, 0, tzinfo=TZ)
    slices = {s.period: s for s in price_usage(TOU, start, start + timedelta(hours=2), 2.0, TZ)}
    assert slices["peak"].kwh == pytest.approx(1.0) and slices["valley"].kwh == pytest.approx(1.0)
    assert sum(s.cost_micro_fen for s in slices.values()) == (62 + 30) * MICRO


moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300)
@given(moments, st.integers(1, 3 * 86400), st.floats(0, 50), st.floats(0.01, 0.99))
def test_splitting_a_window_prices_the_same(start: datetime, seconds: int, kwh: float, cut: float) -> None:
    end = start + timedelta(seconds=seconds)
    middle = start + timedelta(seconds=seconds * cut)
    whole = price_usage(TOU, start, end, kwh, TZ)
    assert sum(s.kwh for s in whole) == pytest.approx(kwh, abs=1e-9)
    first = price_usage(TOU, start, middle, kwh * cut, TZ)
    second = price_usage(TOU, middle, end, kwh * (1 - cut), TZ)
    assert sum(s.cost_micro_fen for s in first + second) == pytest.approx(sum(s.cost_micro_fen for s in whole), abs=2)
    low, high = 30 * kwh * MICRO, 62 * kwh * MICRO
    assert low - 1 <= sum(s.cost_micro_fen for s in whole) <= high + 1


@given(moments, st.integers(1, 86400), st.floats(0, 50))
def test_a_flat_tariff_is_kwh_times_price(start: datetime, seconds: int, kwh: float) -> None:
    [only] = price_usage(FLAT, start, start + timedelta(seconds=seconds), kwh, TZ)
    assert only.cost_micro_fen == round(kwh * 56 * MICRO)
