"""The FastAPI application factory: routers by domain under /api/v1, health at the root."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from api import http_metrics
from api.context import ApiContext
from api.errors import ERROR_RESPONSES, install_error_answers
from api.login_throttle import SignInGuard
from api.routers import (
    auth,
    broadcast,
    calendar,
    commands,
    devices,
    energy,
    faults,
    health,
    me,
    overview,
    pages,
    payments,
    repair_photos,
    repairs,
    rooms,
    schedules,
    simulation,
    site,
    stays,
    users,
    zones,
)
from api.services import ApiServices
from api.tokens import TokenIssuer
from houqin import __version__

# A name's failures from every address together before addresses that failed for it are held too.
NAME_LIMIT_FACTOR = 20


def create_app(services: ApiServices) -> FastAPI:
    """Build the API around already-built, already-open parts; the caller owns their lifetimes."""
    settings = services.settings
    app = FastAPI(
        title="houqin",
        version=__version__,
        description="Campus logistics: meters, repair orders, prepaid dorm electricity, lighting and broadcast.",
        responses=ERROR_RESPONSES,
    )
    app.state.context = ApiContext(
        services=services,
        tokens=TokenIssuer(settings.resolve_jwt_secret(), timedelta(minutes=settings.jwt_ttl_minutes)),
        sign_in_guard=SignInGuard(settings.login_max_failures, settings.login_max_failures * NAME_LIMIT_FACTOR),
    )
    app.add_middleware(http_metrics.RequestMetrics)
    install_error_answers(app)

    # Each domain router carries its full /api/v1 prefix, so the route template that metrics and logs
    # see is the whole path (nested routers would only show their own part).
    routers = (auth, me, site, users, overview, rooms, stays, energy, devices, repairs, repair_photos, faults,
               payments, calendar, schedules, zones, broadcast, commands, simulation)  # fmt: skip
    # The assets first: the pages' own routes take any other /app/... path.
    app.mount("/app/static", pages.web_assets(), name="web-assets")
    for module in (*routers, health, pages):
        app.include_router(module.router)
    return app
