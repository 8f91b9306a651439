"""What the web pages need to know about this campus: its clock, how to pay, tariffs, repair categories,
buildings, and where Grafana's dashboards are. Any signed-in user; the dashboards for staff and admins."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, InventoryDep, PaymentDeskDep, SettingsDep
from api.schemas import DashboardOut, SiteOut, TariffOut
from houqin.billing.desk import COUNTER
from houqin.dashboards import SHIPPED
from houqin.inventory.model import Tariff
from houqin.store.tables import Role

router = APIRouter(prefix="/api/v1", tags=["site"])


def _tariff_out(tariff: Tariff) -> TariffOut:
    periods: list[dict[str, str | int]] = [
        {"name": p.name, "start": p.start.strftime("%H:%M"), "end": p.end.strftime("%H:%M"),
         "price_fen_per_kwh": p.price_fen_per_kwh}
        for p in tariff.periods
    ]  # fmt: skip
    return TariffOut(
        id=tariff.id, description=tariff.description, price_fen_per_kwh=tariff.price_fen_per_kwh, periods=periods,
        free_kwh_per_month=tariff.free_kwh_per_month, free_kwh_per_bed_per_month=tariff.free_kwh_per_bed_per_month,
        min_topup_fen=tariff.min_topup_fen, max_topup_fen=tariff.max_topup_fen,
    )  # fmt: skip


@router.get("/site", response_model=SiteOut, summary="The campus as the web pages need it (any signed-in user)")
async def read_site(user: CurrentUser, inventory: InventoryDep, settings: SettingsDep, desk: PaymentDeskDep) -> SiteOut:
    # Only a cashier (or an admin) records a counter payment, so nobody else is offered it.
    methods = [m for m in desk.methods if m != COUNTER or user.role in {Role.CASHIER, Role.ADMIN}]
    tariffs = [_tariff_out(tariff) for tariff in inventory.tariffs.values()]
    dashboards = []
    if settings.grafana_url and user.role in {Role.STAFF, Role.ADMIN}:
        dashboards = [DashboardOut(uid=d.uid, title=d.title, title_zh=d.title_zh, url=d.url(settings.grafana_url))
                      for d in SHIPPED]  # fmt: skip
    return SiteOut(
        timezone=settings.tz.key,
        payment_methods=methods,
        tariffs=tariffs,
        repair_categories=sorted({c for team in inventory.teams.values() for c in team.categories}),
        buildings=sorted({device.building for device in inventory.devices.values()}),
        dashboards=dashboards,
    )
