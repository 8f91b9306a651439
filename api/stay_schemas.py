"""API shapes for who lives in a shared room: stays, bed-day shares, a leaving student's statement, and
the year-end refund."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.bounds import Day


class StayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64, description="the student's account")
    bed: int = Field(ge=1, le=64)
    moved_in: Day
    note: str = Field(default="", max_length=500)


class MoveOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    moved_out: Day = Field(description="the day they left (not counted)")
    note: str = Field(default="", max_length=500)


class StayOut(BaseModel):
    id: int
    student: str
    bed: int
    moved_in: date
    moved_out: date | None


class MonthPartOut(BaseModel):
    month: str
    bed_days: int
    kwh: float
    cost_fen: int


class StayStatementOut(BaseModel):
    room: str
    stay: StayOut
    months: list[MonthPartOut]
    used_fen: int = Field(description="their bed-day share of the room's electricity, over the stay")
    paid_fen: int = Field(description="their own top-ups into the room over the stay")


class BedShareOut(BaseModel):
    bed: int | None = Field(description="none: the days nobody lived there (bed-day split)")
    student: str | None = Field(description="the student on this bed (none: an empty bed, or the vacant days)")
    bed_days: int | None = Field(default=None, description="bed-day split: the days of the month they lived there")
    kwh: float
    cost_fen: int


class SharesOut(BaseModel):
    room: str
    month: str
    split: Literal["even", "bed_days"] = Field(
        description="bed_days where stays are recorded for the month (each day split between who lived there); "
        "else even, per bed (or per registered student when more than beds)"
    )
    kwh: float = Field(description="the month's kWh, charged and free")
    cost_fen: int = Field(description="the month's money spent on electricity")
    shares: list[BedShareOut] = Field(description="they add up exactly to kwh and cost_fen")


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=200, description="who receives the money (names, or the class account)")
    reason: str = Field(min_length=2, max_length=500)
