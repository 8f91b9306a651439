"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    team: str | None
    rooms: list[str]


class RoomOut(BaseModel):
    id: str
    building: str
    floor: int
    beds: int
    meter: str
    relay: str | None
    tariff: str


class CheckOut(BaseModel):
    name: str
    ok: bool
    detail: str
    seconds: float


class ReadinessOut(BaseModel):
    ready: bool
    checks: list[CheckOut]


class DeviceOut(BaseModel):
    id: str
    kind: str
    model: str
    building: str
    floor: int | None
    room: str | None
    gateway: str | None
    topic: str | None
    enabled: bool
    online: bool | None  # None: houqin has not heard from it within the look-back
    last_seen: datetime | None


class DeviceDetailOut(DeviceOut):
    fields: dict[str, float | bool | str]  # the latest reading
    health: dict[str, float | bool | str]  # the poller's view: online, consecutive failures, latency


class SeriesPointOut(BaseModel):
    start: datetime
    value: float | bool | str


class SeriesOut(BaseModel):
    device: str
    field: str
    unit: str
    agg: str
    every_seconds: float
    points: list[SeriesPointOut]


class UsageWindowOut(BaseModel):
    start: datetime
    end: datetime
    kwh: float | None


class UsageOut(BaseModel):
    room: str
    meter: str
    period: str
    date: date
    total_kwh: float
    windows: list[UsageWindowOut]
