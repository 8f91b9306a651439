"""Dependencies: the database session, the signed-in user, and who may reach what."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import jwt
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import ApiContext
from api.services import OrderListener
from api.tokens import TokenIssuer
from houqin.billing.desk import PaymentDesk
from houqin.billing.policy import PowerPolicy
from houqin.commands import CommandQueue
from houqin.inventory import Inventory
from houqin.inventory.model import Room
from houqin.readiness import Readiness
from houqin.repairs.orders import RepairDesk
from houqin.schedules.book import ScheduleBook
from houqin.schedules.commander import ZoneCommander
from houqin.settings import Settings
from houqin.simulation import FaultInjector
from houqin.store import Database
from houqin.store.tables import Role, User
from houqin.telemetry import TelemetryStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def context_of(request: Request) -> ApiContext:
    """The application's context: the one place ``app.state`` is read, so every dependency below is typed."""
    context: ApiContext = request.app.state.context
    return context


# Every dependency here is ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, which cost
# more than the work of a whole top-up request's lookups. Each reads the context straight from the request.


async def get_context(request: Request) -> ApiContext:
    return context_of(request)


async def get_database(request: Request) -> Database:
    return context_of(request).services.database


async def get_inventory(request: Request) -> Inventory:
    return context_of(request).services.inventory


async def get_tokens(request: Request) -> TokenIssuer:
    return context_of(request).tokens


async def get_session(database: Annotated[Database, Depends(get_database)]) -> AsyncIterator[AsyncSession]:
    async with database.session() as session:
        yield session


async def get_telemetry(request: Request) -> TelemetryStore:
    return context_of(request).services.telemetry


async def get_settings(request: Request) -> Settings:
    return context_of(request).services.settings


async def get_timezone(request: Request) -> ZoneInfo:
    return context_of(request).services.settings.tz


async def get_commands(request: Request) -> CommandQueue:
    return context_of(request).services.commands


async def get_repair_desk(request: Request) -> RepairDesk:
    return context_of(request).services.repairs


async def get_schedule_book(request: Request) -> ScheduleBook:
    return context_of(request).services.schedules


async def get_zone_commander(request: Request) -> ZoneCommander:
    return context_of(request).services.zone_commander


async def get_power_policy(request: Request) -> PowerPolicy:
    return context_of(request).services.power_policy


async def get_payment_desk(request: Request) -> PaymentDesk:
    return context_of(request).services.payments


async def get_readiness(request: Request) -> Readiness:
    return context_of(request).services.readiness


async def get_order_listener(request: Request) -> OrderListener | None:
    return context_of(request).services.on_order_change


async def get_simulator(request: Request) -> FaultInjector | None:
    return context_of(request).services.simulator


ContextDep = Annotated[ApiContext, Depends(get_context)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
DatabaseDep = Annotated[Database, Depends(get_database)]
TelemetryDep = Annotated[TelemetryStore, Depends(get_telemetry)]
InventoryDep = Annotated[Inventory, Depends(get_inventory)]
TokensDep = Annotated[TokenIssuer, Depends(get_tokens)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
TimezoneDep = Annotated[ZoneInfo, Depends(get_timezone)]
CommandsDep = Annotated[CommandQueue, Depends(get_commands)]
RepairDeskDep = Annotated[RepairDesk, Depends(get_repair_desk)]
ScheduleBookDep = Annotated[ScheduleBook, Depends(get_schedule_book)]
ZoneCommanderDep = Annotated[ZoneCommander, Depends(get_zone_commander)]
PowerPolicyDep = Annotated[PowerPolicy, Depends(get_power_policy)]
PaymentDeskDep = Annotated[PaymentDesk, Depends(get_payment_desk)]
ReadinessDep = Annotated[Readiness, Depends(get_readiness)]
OrderListenerDep = Annotated[OrderListener | None, Depends(get_order_listener)]
SimulatorDep = Annotated[FaultInjector | None, Depends(get_simulator)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def get_current_user(
    database: DatabaseDep, tokens: TokensDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    if token is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in", headers=_UNAUTHORIZED)
    try:
        claims = tokens.read(token)
    except jwt.ExpiredSignatureError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token expired", headers=_UNAUTHORIZED) from None
    except jwt.InvalidTokenError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers=_UNAUTHORIZED) from None
    # Read in a session of its own, given back before the route runs: a request never holds two pooled
    # connections at once (the route's own session, or a service's, is the only one it holds).
    async with database.session() as session:
        user = await session.get(User, claims.user_id)
    # A disabled account, a changed password or a changed role ends every token issued before.
    if user is None or not user.active or user.token_version != claims.version or user.role != claims.role:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "token no longer valid", headers=_UNAUTHORIZED)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(*roles: Role) -> Callable[[User], Coroutine[Any, Any, User]]:
    """A dependency that lets only the given roles through (admins always pass)."""
    allowed = {role.value for role in roles} | {Role.ADMIN.value}

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this needs the role {' or '.join(sorted(allowed))}")
        return user

    return check


StaffUser = Annotated[User, Depends(require_role(Role.STAFF))]
AdminUser = Annotated[User, Depends(require_role())]  # admins only
# Workers see devices too: a repair order points at one.
CashierUser = Annotated[User, Depends(require_role(Role.CASHIER))]
CrewUser = Annotated[User, Depends(require_role(Role.STAFF, Role.WORKER))]


async def get_accessible_room(
    room_id: Annotated[str, Path(description="room id from the inventory, e.g. D1-101")],
    user: CurrentUser,
    inventory: InventoryDep,
) -> Room:
    """The room in the path, if this user may see it: staff, cashiers and admins any room, a student only
    their own."""
    room = inventory.rooms.get(room_id)
    if user.role in {Role.STAFF, Role.CASHIER, Role.ADMIN}:
        if room is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no room {room_id!r}")
        return room
    if user.role == Role.STUDENT and room_id in user.room_ids and room is not None:
        return room
    # The same answer whether the room exists or not: a student learns nothing about other rooms.
    raise HTTPException(status.HTTP_403_FORBIDDEN, "you may only see your own room")


AccessibleRoom = Annotated[Room, Depends(get_accessible_room)]
