"""The campus at a glance for staff: load now, today against yesterday, each building's day, devices
offline, repair orders open and overdue, rooms off, and today's largest consumers. One request, so the
home page (refreshed while it is open) costs one round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from sqlalchemy import func, select

from api.deps import InventoryDep, SessionDep, StaffUser, TelemetryDep, TimezoneDep
from api.device_state import by_device, device_out
from api.overview_schemas import BuildingTodayOut, ConsumerOut, OfflineOut, OverviewOut
from houqin.energy.report import EnergyReport, Line, energy_report, merged
from houqin.inventory.energy import category_of
from houqin.repairs.orders import ACTIVE
from houqin.store.tables import RepairOrder, Wallet, WalletState

router = APIRouter(prefix="/api/v1/overview", tags=["overview"])

LOAD_FRESH = timedelta(minutes=5)
TOP = 10


def _campus_hours(report: EnergyReport, code: str) -> list[float | None]:
    lines = [line for line in report.totals if line.code == code]
    campus = merged("campus", code, lines, len(report.boundaries) - 1)
    return [None if amount is None else round(amount, 3) for amount in campus.amounts]


def _total(line: Line | None) -> float | None:
    return None if line is None or all(a is None for a in line.amounts) else round(line.total, 3)


@router.get("", response_model=OverviewOut, summary="The campus at a glance (staff)")
async def read_overview(
    user: StaffUser, session: SessionDep, inventory: InventoryDep, telemetry: TelemetryDep, timezone: TimezoneDep
) -> OverviewOut:
    now = datetime.now(UTC)
    today = now.astimezone(timezone).date()
    report = await energy_report(telemetry, inventory, "day", today, timezone, now=now)
    yesterday = await energy_report(telemetry, inventory, "day", today - timedelta(days=1), timezone, now=now)
    hours_today = _campus_hours(report, "01000")
    hours_yesterday = _campus_hours(yesterday, "01000")
    elapsed = sum(1 for start in report.boundaries[:-1] if start <= now)

    latest = by_device(await telemetry.latest())
    roots = [use for use in report.uses if category_of(use.code) == "01000"
             and (use.parent is None or inventory.devices[use.parent].building != use.building)]  # fmt: skip
    load_w, missing = 0.0, 0
    for use in roots:
        point = latest.get(use.meter, {}).get("electricity")
        power = point.fields.get("power") if point is not None else None
        if (
            point is None
            or now - point.ts > LOAD_FRESH
            or not isinstance(power, int | float)
            or isinstance(power, bool)
        ):
            missing += 1
        else:
            load_w += float(power)

    lines = {(line.building, line.code): line for line in report.totals}
    buildings = []
    for name in sorted({line.building for line in report.totals}):
        info = inventory.buildings.get(name)
        gaps = sum(line.gaps for (b, _), line in lines.items() if b == name)
        buildings.append(BuildingTodayOut(id=name, name=info.name if info and info.name else name,
                                          electricity_kwh=_total(lines.get((name, "01000"))),
                                          water_m3=_total(lines.get((name, "02000"))), gaps=gaps))  # fmt: skip

    states = [device_out(inventory, device, latest.get(device.id, {}), now)[0] for device in inventory.devices.values()]
    offline = [OfflineOut(device=d.id, kind=d.kind, building=d.building, last_seen=d.last_seen)
               for d in states if d.online is False and d.enabled]  # fmt: skip
    room_of_meter = {room.meter: room.id for room in inventory.rooms.values()}
    consumers = sorted(
        (use for use in report.uses if use.meter in room_of_meter),
        key=lambda use: use.total(now)[0], reverse=True,
    )[:TOP]  # fmt: skip

    active = RepairOrder.status.in_(ACTIVE)
    orders_open = await session.scalar(select(func.count()).where(active)) or 0
    overdue = await session.scalar(select(func.count()).where(active, RepairOrder.due_at < now)) or 0
    not_cut = Wallet.state != WalletState.CUT_OFF

    async def rooms(*where: object) -> int:
        return await session.scalar(select(func.count()).select_from(Wallet).where(*where)) or 0  # type: ignore[arg-type]

    return OverviewOut(
        at=now, load_kw=round(load_w / 1000, 3) if roots and missing < len(roots) else None,
        load_meters=len(roots), load_missing=missing,
        hours=[moment.astimezone(timezone) for moment in report.boundaries[:-1]],
        today_kwh=hours_today, yesterday_kwh=hours_yesterday,
        today_total_kwh=round(sum(h or 0.0 for h in hours_today), 3),
        yesterday_same_time_kwh=round(sum(h or 0.0 for h in hours_yesterday[:elapsed]), 3),
        buildings=buildings, devices=len(states), offline=offline[:50],
        never_seen=sum(1 for d in states if d.online is None),
        orders_open=orders_open, orders_overdue=overdue,
        rooms_cut_off=await rooms(Wallet.state == WalletState.CUT_OFF),
        rooms_locked=await rooms(Wallet.locked.is_(True)),
        rooms_low=await rooms(Wallet.state == WalletState.LOW),
        rooms_tripped=await rooms(Wallet.tripped_until > now, not_cut),
        rooms_curfew=await rooms(Wallet.curfew.is_(True), not_cut, Wallet.locked.is_(False)),
        top_rooms=[ConsumerOut(meter=use.meter, room=room_of_meter[use.meter], building=use.building,
                               kwh=round(use.total(now)[0], 3)) for use in consumers],
    )  # fmt: skip
