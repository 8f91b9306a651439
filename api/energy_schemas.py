"""API shapes for energy by building, category and sub-item, and the metering-tree balance."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class AmountsOut(BaseModel):
    code: str = Field(description="01000 electricity, 01A00 lighting and sockets, ...; 01000:unaccounted")
    name: str
    unit: str
    total: float
    amounts: list[float | None] = Field(description="per window; null: no meter had a reading for it")
    gaps: int = Field(default=0, description="meter-windows without a reading (a meter that did not answer)")
    meters: int = 0


class CategoryOut(AmountsOut):
    per_m2: float | None = Field(description="the period's total per m² of floor area (buildings with an area)")
    per_occupant: float | None
    kgce: float | None = Field(description="electricity: standard coal equivalent, kg")
    co2_kg: float | None = Field(description="electricity: with the grid emission factor setting")
    previous: float | None = Field(
        description="the same figure for the period before (day, month, year, term); for a period in progress, "
        "the same part of it (its first days)"
    )
    last_year: float | None = Field(description="the same period a year before (the same part, likewise)")


class BuildingEnergyOut(BaseModel):
    id: str
    name: str
    floor_area_m2: float | None
    occupants: int | None
    categories: list[CategoryOut]
    sub_items: list[AmountsOut]


class EnergyOut(BaseModel):
    period: str
    date: date
    windows: list[datetime] = Field(description="each window's start, in the campus's clock")
    end: datetime
    campus: list[CategoryOut]
    buildings: list[BuildingEnergyOut]


class BalanceOut(BaseModel):
    meter: str
    building: str
    parent_total: float
    children_total: float
    children: int
    unaccounted: float
    share: float | None = Field(description="unaccounted ÷ the parent's total")
    complete: bool = Field(description="every meter answered in every window: a gap makes the share uncertain")
