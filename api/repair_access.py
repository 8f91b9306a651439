"""Who may see a repair order, and the dependency that loads one for a step of its life.

One visibility rule serves both the list (as a SQL filter) and a single order (the same filter on its
id): staff and admins see every order; a worker the orders assigned to them, their team's unassigned
ones, and those they reported; anyone else what they reported.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Path, status
from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from api.bounds import MAX_ROW_ID
from api.deps import CrewUser, CurrentUser, OrderListenerDep, RepairDeskDep, SessionDep, StaffUser
from api.repair_views import order_out
from api.schemas import RepairOrderOut
from api.services import OrderListener
from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import RepairDesk, RepairError
from houqin.store.tables import RepairOrder, Role, User

STAFF = {Role.STAFF.value, Role.ADMIN.value}
# Ids are 64-bit rows: anything beyond is no order, and must not reach the database's integer parser.
OrderId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the repair order's id")]


def visible_to(user: User) -> ColumnElement[bool]:
    """The orders ``user`` may see, as a condition on ``RepairOrder``."""
    if user.role in STAFF:
        return true()
    reported = RepairOrder.reporter_id == user.id
    if user.role == Role.WORKER.value:
        team_pool = and_(RepairOrder.assignee_id.is_(None), RepairOrder.team == user.team)
        return or_(RepairOrder.assignee_id == user.id, team_pool, reported)
    return reported


async def visible_order(session: AsyncSession, order_id: int, user: User) -> RepairOrder:
    """The order, locked for the step about to be taken, if ``user`` may see it."""
    query = select(RepairOrder).where(RepairOrder.id == order_id, visible_to(user)).with_for_update()
    order = (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()
    if order is None:
        # The same answer whether it exists or not: nobody learns about orders they may not see.
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no repair order {order_id} for you")
    return order


Step = Callable[[AsyncSession, RepairOrder, User, datetime], Awaitable[None] | None]


@dataclass
class OrderStep:
    """A visible order, loaded for one step of its life by who takes it."""

    order: RepairOrder
    user: User
    session: AsyncSession
    desk: RepairDesk
    listener: OrderListener | None

    async def take(self, step: Step, news: str | None = None) -> RepairOrderOut:
        """Take the step and commit it (a step the order's state forbids is a 409 with the reason), then tell
        the listener ``news`` if given."""
        try:
            pending = step(self.session, self.order, self.user, datetime.now(UTC))
            if pending is not None:
                await pending
        except RepairError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        await self.session.commit()
        if news is not None and self.listener is not None:
            await self.listener(OrderChange(self.order, news))
        return (await order_out(self.session, [self.order]))[0]


async def _viewer_step(
    order_id: OrderId, user: CurrentUser, session: SessionDep, desk: RepairDeskDep, listener: OrderListenerDep
) -> OrderStep:
    return OrderStep(await visible_order(session, order_id, user), user, session, desk, listener)


async def _assignee_step(
    order_id: OrderId, user: CrewUser, session: SessionDep, desk: RepairDeskDep, listener: OrderListenerDep
) -> OrderStep:
    step = await _viewer_step(order_id, user, session, desk, listener)
    if user.role not in STAFF and step.order.assignee_id not in (user.id, None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its assignee (or staff) may do this")
    return step


async def _reporter_step(
    order_id: OrderId, user: CurrentUser, session: SessionDep, desk: RepairDeskDep, listener: OrderListenerDep
) -> OrderStep:
    step = await _viewer_step(order_id, user, session, desk, listener)
    if user.role not in STAFF and step.order.reporter_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its reporter (or staff) may do this")
    return step


async def _staff_step(
    order_id: OrderId, user: StaffUser, session: SessionDep, desk: RepairDeskDep, listener: OrderListenerDep
) -> OrderStep:
    return await _viewer_step(order_id, user, session, desk, listener)


ViewerStep = Annotated[OrderStep, Depends(_viewer_step)]  # whoever may see the order
AssigneeStep = Annotated[OrderStep, Depends(_assignee_step)]  # its assignee, a worker of its team, or staff
ReporterStep = Annotated[OrderStep, Depends(_reporter_step)]  # its reporter or staff
StaffStep = Annotated[OrderStep, Depends(_staff_step)]  # staff and admins
