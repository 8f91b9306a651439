"""The FastAPI application factory: routers by domain under /api/v1, health at the root."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI

from api import http_metrics
from api.login_throttle import LoginThrottle
from api.routers import (
    auth,
    devices,
    health,
    me,
    pages,
    payments,
    repair_photos,
    repairs,
    rooms,
    schedules,
    simulation,
    site,
    users,
    zones,
)
from api.tokens import TokenIssuer
from houqin import __version__
from houqin.billing.desk import PaymentDesk
from houqin.billing.policy import PowerPolicy
from houqin.billing.providers.enabled import enabled_providers
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.readiness import Readiness
from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import ZoneCommander
from houqin.settings import Settings
from houqin.simulation import FaultInjector
from houqin.store import Database
from houqin.telemetry import TelemetryStore


def create_app(
    settings: Settings,
    *,
    inventory: Inventory,
    database: Database,
    readiness: Readiness,
    telemetry: TelemetryStore,
    simulator: FaultInjector | None = None,
    on_order_change: Callable[[OrderChange], Awaitable[None]] | None = None,
    commands: CommandQueue | None = None,
    schedule_book: ScheduleBook | None = None,
) -> FastAPI:
    """Build the API around already-open parts; the caller owns their lifetimes."""
    app = FastAPI(
        title="houqin",
        version=__version__,
        description="Campus logistics: meters, repair orders, prepaid dorm electricity, lighting and broadcast.",
    )
    app.state.settings = settings
    app.state.inventory = inventory
    app.state.database = database
    app.state.readiness = readiness
    app.state.simulator = simulator
    app.state.telemetry = telemetry
    app.state.repairs = RepairDesk(inventory, settings.repairs, settings.tz)
    app.state.on_order_change = on_order_change
    # Shared with the process's dispatchers and scheduler, so a command queued here is sent at once.
    app.state.commands = commands or CommandQueue(database, inventory)
    app.state.schedules = schedule_book or ScheduleBook(database, inventory, settings.tz)
    app.state.zone_commander = ZoneCommander(database, inventory, app.state.commands)
    app.state.power_policy = PowerPolicy(inventory, app.state.commands, settings.billing, settings.tz, database)
    app.state.payments = PaymentDesk(
        database, app.state.power_policy, enabled_providers(settings), counter=settings.payments.campus_card
    )
    app.state.tokens = TokenIssuer(settings.resolve_jwt_secret(), timedelta(minutes=settings.jwt_ttl_minutes))
    # A campus shares a few NAT addresses, so the per-address limit is looser than the per-name one.
    app.state.login_throttle_by_name = LoginThrottle(max_failures=settings.login_max_failures)
    app.state.login_throttle_by_address = LoginThrottle(max_failures=settings.login_max_failures * 10)
    app.add_middleware(http_metrics.RequestMetrics)

    # Each domain router carries its full /api/v1 prefix, so the route template that metrics and logs
    # see is the whole path (nested routers would only show their own part).
    routers = (auth, me, site, users, rooms, devices, repairs, repair_photos, payments, schedules, zones, simulation)
    # The assets first: the pages' own routes take any other /app/... path.
    app.mount("/app/static", pages.web_assets(), name="web-assets")
    for module in (*routers, health, pages):
        app.include_router(module.router)
    return app
