"""The FastAPI application factory: routers by domain under /api/v1, health at the root."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, FastAPI

from api import http_metrics
from api.routers import auth, health, me, rooms
from api.tokens import TokenIssuer
from houqin import __version__
from houqin.inventory import Inventory
from houqin.readiness import Readiness
from houqin.settings import Settings
from houqin.store import Database


def create_app(settings: Settings, *, inventory: Inventory, database: Database, readiness: Readiness) -> FastAPI:
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
    app.state.tokens = TokenIssuer(settings.resolve_jwt_secret(), timedelta(minutes=settings.jwt_ttl_minutes))
    app.middleware("http")(http_metrics.record_request)

    v1 = APIRouter(prefix="/api/v1")
    v1.include_router(auth.router)
    v1.include_router(me.router)
    v1.include_router(rooms.router)
    app.include_router(v1)
    app.include_router(health.router)
    return app
