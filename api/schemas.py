"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from houqin.inventory.circuits import CutCause


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


# cut_off: for money (a top-up restores it); tripped: overload or appliance, until a time; locked: until staff
# unlock it; curfew: the dorm's night cut, until the schedule ends it.
RoomState = Literal["normal", "low", "cut_off", "tripped", "locked", "curfew"]


class CircuitOut(BaseModel):
    id: str
    name: str
    meter: str | None = Field(description="none: the room's meter")
    energy_field: str
    relay: str | None
    tariff: str | None = Field(description="none: the room's tariff")
    cut_on: list[CutCause] = Field(description="what switches it off: balance, curfew, trip, lock")


class RoomOut(BaseModel):
    id: str
    building: str
    floor: int
    beds: int
    meter: str
    relay: str | None
    tariff: str
    circuits: list[CircuitOut] = Field(default_factory=list, description="circuits metered and switched apart")
    balance_fen: int | None = Field(default=None, description="with ?wallets=true")
    state: RoomState | None = Field(default=None, description="with ?wallets=true")


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
    commands: dict[str, list[str]] = Field(default_factory=dict, description="its model's commands and their actions")


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
    partial: bool = Field(
        default=False, description="counted from the meter's first reading inside the window: none came before it"
    )


class CircuitUsageOut(BaseModel):
    id: str
    total_kwh: float


class UsageOut(BaseModel):
    room: str
    meter: str
    period: str
    date: date
    total_kwh: float
    windows: list[UsageWindowOut]
    circuits: list[CircuitUsageOut] = Field(default_factory=list, description="a room with circuits: each one's")


class RepairOrderOut(BaseModel):
    id: int
    number: str
    title: str
    description: str
    category: str
    priority: str
    building: str | None
    floor: int | None
    room: str | None
    device: str | None
    source: str
    rule_id: str | None
    reporter: str | None
    status: str
    team: str | None
    assignee: str | None
    due_at: datetime
    overdue: bool
    escalated: bool
    rating: int | None
    created_at: datetime
    started_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None


class RepairEventOut(BaseModel):
    kind: str
    actor: str
    at: datetime
    note: str
    status: str


class NewRepairIn(BaseModel):
    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=4000)
    category: str = Field(min_length=1, max_length=64)
    priority: Literal["urgent", "high", "normal", "low"] = "normal"
    building: str | None = Field(default=None, max_length=128)
    floor: int | None = Field(default=None, ge=-10, le=200)  # the inventory's range of floors
    room: str | None = Field(default=None, max_length=64)
    device: str | None = Field(default=None, max_length=64)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=2000)


class AssignIn(BaseModel):
    username: str


class RatingIn(BaseModel):
    stars: int = Field(ge=1, le=5)


class FaultOut(BaseModel):
    id: int
    rule_id: str
    device: str
    state: str
    severity: str
    title: str
    value: float | None
    started_at: datetime
    activated_at: datetime | None
    cleared_at: datetime | None
    repair_order_id: int | None


class RepairStatsRow(BaseModel):
    key: str
    open: int
    resolved: int
    overdue: int
    median_hours_to_resolve: float | None


class RepairStatsOut(BaseModel):
    by_worker: list[RepairStatsRow]
    by_category: list[RepairStatsRow]
    by_building: list[RepairStatsRow]
    by_rule: list[RepairStatsRow]


class CommandIn(BaseModel):
    command: str = Field(min_length=1, max_length=64, description="a command of the device's model, e.g. relay")
    action: str = Field(min_length=1, max_length=64, description="one of its actions, e.g. on / off")
    reason: str = Field(default="", max_length=500)


class CommandOut(BaseModel):
    id: int
    device: str
    command: str
    action: str
    state: str
    source: str
    reason: str
    requested_by: str
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    last_error: str


class CircuitStateOut(BaseModel):
    id: str
    name: str
    tariff: str
    powered: bool = Field(description="whether the circuit has power now, by the room's state and its cut policy")
    billed: bool = Field(description="false: its tariff costs nothing (e.g. the lights), so billing records none of it")
    month_kwh: float = Field(description="kWh billed this month (charged and free)")
    month_spend_fen: int


class WalletOut(BaseModel):
    room: str
    balance_fen: int
    state: RoomState
    locked: bool = Field(description="off after repeated high-power appliances until staff unlock it")
    cut_pending: bool = Field(description="the balance is at the cut-off level; the cut waits for the night to end")
    tripped_until: datetime | None = Field(description="overload or appliance trip: power returns at this time")
    trips: int = Field(description="overload and appliance trips so far")
    power_limit_w: float | None
    curfew: bool = Field(description="off for the night by the dorm's schedule; power returns when it ends")
    night_limit_w: int | None = Field(description="a lower power limit the dorm's schedule has in force now")
    tariff: str
    month: str
    month_kwh: float
    month_spend_fen: int
    free_kwh_left: float
    circuits: list[CircuitStateOut] = Field(default_factory=list, description="a room with circuits: each one")


class RoomDetailOut(RoomOut):
    wallet: WalletOut


class PowerEventOut(BaseModel):
    id: int
    room: str
    kind: Literal["appliance_trip", "locked", "unlocked"]
    at: datetime
    reason: str
    step_w: float | None = Field(description="an appliance trip: the rise in power that tripped it (W)")
    power_factor: float | None
    restore_at: datetime | None = Field(description="an appliance trip: when power returns (none: locked)")
    by: str | None = Field(description="a lock or unlock by staff: who")


class LockedRoomOut(BaseModel):
    room: str
    building: str
    locked_at: datetime | None
    reason: str


class UnlockIn(BaseModel):
    reason: str = Field(min_length=2, max_length=500, description="why the room is locked, or may have power again")


class NoticeOut(BaseModel):
    id: int
    kind: str
    balance_fen: int | None
    message: str
    created_at: datetime


class StatementDayOut(BaseModel):
    day: date
    kwh_charged: float
    kwh_free: float
    charged_fen: int
    topups_fen: int
    refunds_fen: int
    adjustments_fen: int
    closing_fen: int


class StatementOut(BaseModel):
    room: str
    month: str
    tariff: str
    opening_fen: int
    closing_fen: int
    kwh_charged: float
    kwh_free: float
    charged_fen: int
    free_kwh_allowance: float
    free_kwh_left: float
    days: list[StatementDayOut]


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    amount_fen: int
    balance_after_fen: int
    kwh: float | None
    cause: str
    note: str
    created_at: datetime
    paid_by: str | None = Field(default=None, description="a top-up: the account that paid it (its name if known)")


class AdjustmentIn(BaseModel):
    amount_fen: int = Field(description="positive credits the room, negative debits it; not 0", ge=-10_000_000,
                            le=10_000_000)  # fmt: skip
    kind: Literal["adjustment", "refund", "topup"] = "adjustment"
    reason: str = Field(min_length=3, max_length=500)

    @field_validator("amount_fen")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("an adjustment of 0 fen changes nothing")
        return value


class TopupIn(BaseModel):
    amount_fen: int = Field(gt=0, le=10_000_000)
    provider: str = Field(min_length=1, max_length=16)


class TopupOut(BaseModel):
    id: int
    room: str
    provider: str
    amount_fen: int
    state: str
    created_at: datetime
    paid_at: datetime | None


class CheckoutOut(BaseModel):
    order: TopupOut
    checkout: dict[str, str]


class TariffOut(BaseModel):
    id: str
    description: str
    price_fen_per_kwh: int | None = Field(description="a flat price; None for time of use")
    periods: list[dict[str, str | int]] = Field(description="time-of-use bands: name, start, end, price")
    free_kwh_per_month: float
    free_kwh_per_bed_per_month: float
    min_topup_fen: int
    max_topup_fen: int


class DashboardOut(BaseModel):
    uid: str
    title: str
    title_zh: str
    url: str


class SiteOut(BaseModel):
    timezone: str = Field(description="the campus clock (IANA name): the pages show times in it")
    payment_methods: list[str] = Field(description="how this user may top up a room")
    tariffs: list[TariffOut]
    repair_categories: list[str]
    buildings: list[str]
    dashboards: list[DashboardOut] = Field(description="Grafana dashboards (staff and admins, when configured)")


class UserOut(BaseModel):
    username: str
    display_name: str
    role: str
    team: str | None
    active: bool


class RepairPhotoOut(BaseModel):
    id: int
    uploaded_by: str
    content_type: str
    size: int
    created_at: datetime
