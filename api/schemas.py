"""Request and response bodies of the API."""

from __future__ import annotations

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
