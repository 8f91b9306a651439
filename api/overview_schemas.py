"""The campus at a glance: what the staff home page shows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class BuildingTodayOut(BaseModel):
    id: str
    name: str
    electricity_kwh: float | None
    water_m3: float | None
    gaps: int = Field(description="meter-hours without a reading today")


class ConsumerOut(BaseModel):
    meter: str
    room: str | None
    building: str
    kwh: float


class OfflineOut(BaseModel):
    device: str
    kind: str
    building: str
    last_seen: datetime | None


class OverviewOut(BaseModel):
    at: datetime
    load_kw: float | None = Field(description="the campus's electricity load now: root meters read in the last 5 min")
    load_meters: int = Field(description="root meters the load is summed from")
    load_missing: int = Field(description="root meters with no power reading in the last 5 min")
    hours: list[datetime] = Field(description="today's hours, in the campus's clock")
    today_kwh: list[float | None] = Field(description="campus electricity per hour today")
    yesterday_kwh: list[float | None] = Field(description="the same hours yesterday")
    today_total_kwh: float
    yesterday_same_time_kwh: float = Field(description="yesterday up to the same hour, for a fair comparison")
    buildings: list[BuildingTodayOut]
    devices: int
    offline: list[OfflineOut]
    never_seen: int = Field(description="devices houqin has never heard from")
    orders_open: int
    orders_overdue: int
    rooms_cut_off: int
    rooms_locked: int
    rooms_low: int
    rooms_tripped: int
    rooms_curfew: int
    top_rooms: list[ConsumerOut] = Field(description="today's largest room meters")
