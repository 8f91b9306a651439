"""Repair orders.

Who may do what:
- anyone signed in reports a problem (a student for their own room, or a public space with no room) and
  follows, annotates, confirms (closes), reopens and rates what they reported;
- a maintenance worker sees the orders assigned to them and their team's unassigned ones, and starts,
  annotates and resolves their own;
- staff and admins see everything, assign and reassign, cancel, and read the statistics and the faults.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import select

from api.deps import CurrentUser, InventoryDep, OrderListenerDep, RepairDeskDep, SessionDep, StaffUser
from api.repair_access import STAFF, AssigneeStep, ReporterStep, StaffStep, ViewerStep, visible_to
from api.repair_views import order_out, user_names
from api.schemas import (
    AssignIn,
    NewRepairIn,
    NoteIn,
    RatingIn,
    ReasonIn,
    RepairEventOut,
    RepairOrderOut,
    RepairStatsOut,
    RepairStatsRow,
)
from houqin.accounts import get_user
from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import ACTIVE, FINISHED, NewOrder
from houqin.store.tables import OrderStatus, Priority, RepairEvent, RepairOrder, Role

router = APIRouter(prefix="/api/v1/repairs", tags=["repairs"])


@router.get("", response_model=list[RepairOrderOut], summary="Repair orders I may see, filtered")
async def list_orders(
    user: CurrentUser,
    session: SessionDep,
    status_: Annotated[OrderStatus | None, Query(alias="status")] = None,
    category: str | None = None,
    building: str | None = None,
    assignee: str | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[RepairOrderOut]:
    query = select(RepairOrder).where(visible_to(user)).order_by(RepairOrder.due_at)
    if status_ is not None:
        query = query.where(RepairOrder.status == status_.value)
    if category is not None:
        query = query.where(RepairOrder.category == category)
    if building is not None:
        query = query.where(RepairOrder.building == building)
    if assignee is not None:
        worker = await get_user(session, assignee)
        query = query.where(RepairOrder.assignee_id == (worker.id if worker else -1))
    if overdue is not None:
        late = RepairOrder.status.in_([s.value for s in ACTIVE]) & (RepairOrder.due_at < datetime.now(UTC))
        query = query.where(late if overdue else ~late)
    orders = list((await session.execute(query.limit(limit))).scalars())
    return await order_out(session, orders)


@router.post(
    "",
    response_model=RepairOrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="Report a problem (anyone signed in; a student for their own room or a public space)",
)
async def create_order(
    body: NewRepairIn,
    user: CurrentUser,
    session: SessionDep,
    inventory: InventoryDep,
    desk: RepairDeskDep,
    listener: OrderListenerDep,
) -> RepairOrderOut:
    building, floor = body.building, body.floor
    if body.room is not None:
        room = inventory.rooms.get(body.room)
        if user.role == Role.STUDENT and body.room not in user.room_ids:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "students report problems in their own room only")
        if room is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no room {body.room!r}")
        building, floor = room.building, room.floor
    if body.device is not None:
        device = inventory.devices.get(body.device)
        if device is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no device {body.device!r}")
        serves = inventory.room_of(device)
        # A student's report is about their own room or a public place, never another room's device.
        if user.role == Role.STUDENT.value and serves is not None and serves not in user.room_ids:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "students report problems in their own room only")
        if body.room is not None and serves is not None and serves != body.room:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"device {body.device!r} is in room {serves!r}, not {body.room!r}")  # fmt: skip
    if not any(body.category in team.categories for team in inventory.teams.values()):
        known = sorted({c for team in inventory.teams.values() for c in team.categories})
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"unknown category {body.category!r}; one of {', '.join(known)}"
        )
    priority = Priority(body.priority)
    if user.role == Role.STUDENT.value and priority == Priority.URGENT:
        priority = Priority.HIGH  # staff decide what is urgent
    new = NewOrder(title=body.title, category=body.category, priority=priority, description=body.description,
                   building=building, floor=floor, room=body.room, device=body.device, reporter=user)  # fmt: skip
    order = await desk.open(session, new, datetime.now(UTC))
    await session.commit()
    if listener is not None:
        await listener(OrderChange(order, "opened"))
    return (await order_out(session, [order]))[0]


@router.get("/stats", response_model=RepairStatsOut, summary="Repair statistics (staff)")
async def read_stats(user: StaffUser, session: SessionDep) -> RepairStatsOut:
    orders = list((await session.execute(select(RepairOrder))).scalars())
    names = await user_names(session, [o.assignee_id for o in orders])
    now = datetime.now(UTC)

    def rows(key: Callable[[RepairOrder], str | None]) -> list[RepairStatsRow]:
        groups: dict[str, list[RepairOrder]] = defaultdict(list)
        for order in orders:
            value = key(order)
            if value is not None:
                groups[value].append(order)
        out = []
        for name, members in sorted(groups.items()):
            hours = [(o.resolved_at - o.created_at).total_seconds() / 3600 for o in members
                     if o.status in FINISHED and o.resolved_at is not None]  # fmt: skip
            out.append(RepairStatsRow(
                key=name,
                open=sum(o.status in ACTIVE for o in members),
                resolved=sum(o.status in FINISHED for o in members),
                overdue=sum(o.status in ACTIVE and o.due_at < now for o in members),
                median_hours_to_resolve=round(statistics.median(hours), 2) if hours else None,
            ))  # fmt: skip
        return out

    return RepairStatsOut(
        by_worker=rows(lambda o: names.get(o.assignee_id) if o.assignee_id else None),
        by_category=rows(lambda o: o.category),
        by_building=rows(lambda o: o.building),
        by_rule=rows(lambda o: o.rule_id),
    )


@router.get("/{order_id}", response_model=RepairOrderOut, summary="One repair order")
async def read_order(step: ViewerStep) -> RepairOrderOut:
    return (await order_out(step.session, [step.order]))[0]


@router.get("/{order_id}/events", response_model=list[RepairEventOut], summary="Its event trail")
async def read_events(step: ViewerStep) -> list[RepairEventOut]:
    query = select(RepairEvent).where(RepairEvent.order_id == step.order.id).order_by(RepairEvent.id)
    events = (await step.session.execute(query)).scalars()
    return [RepairEventOut(kind=e.kind, actor=e.actor, at=e.at, note=e.note, status=e.status) for e in events]


@router.post("/{order_id}/start", response_model=RepairOrderOut, summary="Start work (assignee)")
async def start_order(step: AssigneeStep) -> RepairOrderOut:
    return await step.take(step.desk.start)


@router.post("/{order_id}/notes", response_model=RepairOrderOut, summary="Add a note")
async def add_note(body: NoteIn, step: ViewerStep) -> RepairOrderOut:
    return await step.take(lambda session, order, user, now: step.desk.note(session, order, user, now, body.text))


@router.post("/{order_id}/resolve", response_model=RepairOrderOut, summary="Resolve (assignee)")
async def resolve_order(body: ReasonIn, step: AssigneeStep) -> RepairOrderOut:
    return await step.take(
        lambda session, order, user, now: step.desk.resolve(session, order, user, now, body.reason), "resolved"
    )


@router.post("/{order_id}/close", response_model=RepairOrderOut, summary="Confirm it is fixed")
async def close_order(step: ReporterStep) -> RepairOrderOut:
    return await step.take(step.desk.close)


@router.post("/{order_id}/reopen", response_model=RepairOrderOut, summary="It is not fixed")
async def reopen_order(body: ReasonIn, step: ReporterStep) -> RepairOrderOut:
    return await step.take(lambda session, order, user, now: step.desk.reopen(session, order, user, now, body.reason))


@router.post("/{order_id}/cancel", response_model=RepairOrderOut, summary="Cancel with a reason")
async def cancel_order(body: ReasonIn, step: ReporterStep) -> RepairOrderOut:
    if step.user.role not in STAFF and step.order.started_at is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "work has started: ask staff to cancel it")
    return await step.take(lambda session, order, user, now: step.desk.cancel(session, order, user, now, body.reason))


@router.post("/{order_id}/assign", response_model=RepairOrderOut, summary="Assign (staff)")
async def assign_order(body: AssignIn, step: StaffStep) -> RepairOrderOut:
    worker = await get_user(step.session, body.username)
    if worker is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no user {body.username!r}")
    return await step.take(
        lambda session, order, user, now: step.desk.assign(session, order, worker, user, now), "assigned"
    )


@router.post("/{order_id}/rating", response_model=RepairOrderOut, summary="Rate (reporter)")
async def rate_order(body: RatingIn, step: ViewerStep) -> RepairOrderOut:
    if step.order.reporter_id != step.user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its reporter rates an order")
    return await step.take(lambda session, order, user, now: step.desk.rate(session, order, user, now, body.stars))
