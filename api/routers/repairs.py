"""Repair orders and faults.

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
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import CrewUser, CurrentUser, InventoryDep, SessionDep, StaffUser
from api.schemas import (
    AssignIn,
    FaultOut,
    NewRepairIn,
    NoteIn,
    RatingIn,
    ReasonIn,
    RepairEventOut,
    RepairOrderOut,
    RepairStatsOut,
    RepairStatsRow,
)
from houqin.accounts import Role, get_user
from houqin.repairs.faults import OrderChange
from houqin.repairs.orders import ACTIVE, FINISHED, NewOrder, OrderStatus, Priority, RepairDesk, RepairError
from houqin.store.tables import Fault, RepairEvent, RepairOrder, User

router = APIRouter(tags=["repairs"])

STAFF = {Role.STAFF.value, Role.ADMIN.value}


def repair_desk(request: Request) -> RepairDesk:
    desk: RepairDesk = request.app.state.repairs
    return desk


async def _names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


def _out(order: RepairOrder, names: dict[int, str], now: datetime) -> RepairOrderOut:
    return RepairOrderOut(
        id=order.id, number=order.number, title=order.title, description=order.description,
        category=order.category, priority=order.priority, building=order.building, floor=order.floor,
        room=order.room, device=order.device, source=order.source, rule_id=order.rule_id,
        reporter=names.get(order.reporter_id) if order.reporter_id else None, status=order.status,
        team=order.team, assignee=names.get(order.assignee_id) if order.assignee_id else None,
        due_at=order.due_at, overdue=order.status in ACTIVE and order.due_at < now, escalated=order.escalated,
        rating=order.rating, created_at=order.created_at, started_at=order.started_at,
        resolved_at=order.resolved_at, closed_at=order.closed_at,
    )  # fmt: skip


async def _outs(session: AsyncSession, orders: list[RepairOrder]) -> list[RepairOrderOut]:
    names = await _names(session, [o.reporter_id for o in orders] + [o.assignee_id for o in orders])
    now = datetime.now(UTC)
    return [_out(order, names, now) for order in orders]


async def _announce(request: Request, change: OrderChange) -> None:
    on_order_change = request.app.state.on_order_change
    if on_order_change is not None:
        await on_order_change(change)


def _may_see(user: User, order: RepairOrder) -> bool:
    if user.role in STAFF:
        return True
    if user.role == Role.WORKER.value and (
        order.assignee_id == user.id or (order.assignee_id is None and order.team == user.team)
    ):
        return True
    return order.reporter_id == user.id


async def visible_order(session: AsyncSession, order_id: int, user: User) -> RepairOrder:
    order = await session.get(RepairOrder, order_id, with_for_update=True)
    if order is None or not _may_see(user, order):
        # The same answer whether it exists or not: nobody learns about orders they may not see.
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no repair order {order_id} for you")
    return order


async def _step(
    session: AsyncSession, order: RepairOrder, step: Callable[[], Awaitable[None] | None]
) -> RepairOrderOut:
    """Take one step of the order's life and commit it; a step its state forbids is a 409 with the reason."""
    try:
        pending = step()
        if pending is not None:
            await pending
    except RepairError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    await session.commit()
    return (await _outs(session, [order]))[0]


@router.get("/api/v1/repairs", response_model=list[RepairOrderOut], summary="Repair orders I may see, filtered")
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
    query = select(RepairOrder).order_by(RepairOrder.due_at)
    if user.role == Role.WORKER.value:
        mine = RepairOrder.assignee_id == user.id
        query = query.where(or_(mine, (RepairOrder.assignee_id.is_(None)) & (RepairOrder.team == user.team)))
    elif user.role not in STAFF:
        query = query.where(RepairOrder.reporter_id == user.id)
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
    return await _outs(session, orders)


@router.post(
    "/api/v1/repairs",
    response_model=RepairOrderOut,
    status_code=status.HTTP_201_CREATED,
    summary="Report a problem (anyone signed in; a student for their own room or a public space)",
)
async def create_order(
    body: NewRepairIn, user: CurrentUser, session: SessionDep, inventory: InventoryDep, request: Request
) -> RepairOrderOut:
    building, floor = body.building, body.floor
    if body.room is not None:
        room = inventory.rooms.get(body.room)
        if user.role == Role.STUDENT.value and body.room not in user.room_ids:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "students report problems in their own room only")
        if room is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no room {body.room!r}")
        building, floor = room.building, room.floor
    if body.device is not None and body.device not in inventory.devices:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no device {body.device!r}")
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
    order = await repair_desk(request).open(session, new, datetime.now(UTC))
    await session.commit()
    await _announce(request, OrderChange(order, "opened"))
    return (await _outs(session, [order]))[0]


@router.get("/api/v1/repairs/stats", response_model=RepairStatsOut, summary="Repair statistics (staff)")
async def read_stats(user: StaffUser, session: SessionDep) -> RepairStatsOut:
    orders = list((await session.execute(select(RepairOrder))).scalars())
    names = await _names(session, [o.assignee_id for o in orders])
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


@router.get("/api/v1/repairs/{order_id}", response_model=RepairOrderOut, summary="One repair order")
async def read_order(order_id: int, user: CurrentUser, session: SessionDep) -> RepairOrderOut:
    return (await _outs(session, [await visible_order(session, order_id, user)]))[0]


@router.get("/api/v1/repairs/{order_id}/events", response_model=list[RepairEventOut], summary="Its event trail")
async def read_events(order_id: int, user: CurrentUser, session: SessionDep) -> list[RepairEventOut]:
    await visible_order(session, order_id, user)
    events = await session.execute(select(RepairEvent).where(RepairEvent.order_id == order_id).order_by(RepairEvent.id))
    return [RepairEventOut(kind=e.kind, actor=e.actor, at=e.at, note=e.note, status=e.status) for e in events.scalars()]


def _assignee_or_staff(user: User, order: RepairOrder) -> None:
    if user.role in STAFF:
        return
    if user.role == Role.WORKER.value and order.assignee_id in (user.id, None):
        return
    raise HTTPException(status.HTTP_403_FORBIDDEN, "only its assignee (or staff) may do this")


def _reporter_or_staff(user: User, order: RepairOrder) -> None:
    if user.role not in STAFF and order.reporter_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its reporter (or staff) may do this")


@router.post("/api/v1/repairs/{order_id}/start", response_model=RepairOrderOut, summary="Start work (assignee)")
async def start_order(order_id: int, user: CrewUser, session: SessionDep, request: Request) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    _assignee_or_staff(user, order)
    return await _step(session, order, lambda: repair_desk(request).start(session, order, user, datetime.now(UTC)))


@router.post("/api/v1/repairs/{order_id}/notes", response_model=RepairOrderOut, summary="Add a note")
async def add_note(
    order_id: int, body: NoteIn, user: CurrentUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    now = datetime.now(UTC)
    return await _step(session, order, lambda: repair_desk(request).note(session, order, user, now, body.text))


@router.post("/api/v1/repairs/{order_id}/resolve", response_model=RepairOrderOut, summary="Resolve (assignee)")
async def resolve_order(
    order_id: int, body: ReasonIn, user: CrewUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    _assignee_or_staff(user, order)
    now = datetime.now(UTC)
    out = await _step(session, order, lambda: repair_desk(request).resolve(session, order, user, now, body.reason))
    await _announce(request, OrderChange(order, "resolved"))
    return out


@router.post("/api/v1/repairs/{order_id}/close", response_model=RepairOrderOut, summary="Confirm it is fixed")
async def close_order(order_id: int, user: CurrentUser, session: SessionDep, request: Request) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    _reporter_or_staff(user, order)
    return await _step(session, order, lambda: repair_desk(request).close(session, order, user, datetime.now(UTC)))


@router.post("/api/v1/repairs/{order_id}/reopen", response_model=RepairOrderOut, summary="It is not fixed")
async def reopen_order(
    order_id: int, body: ReasonIn, user: CurrentUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    _reporter_or_staff(user, order)
    now = datetime.now(UTC)
    return await _step(session, order, lambda: repair_desk(request).reopen(session, order, user, now, body.reason))


@router.post("/api/v1/repairs/{order_id}/cancel", response_model=RepairOrderOut, summary="Cancel with a reason")
async def cancel_order(
    order_id: int, body: ReasonIn, user: CurrentUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    _reporter_or_staff(user, order)
    if user.role not in STAFF and order.started_at is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "work has started: ask staff to cancel it")
    now = datetime.now(UTC)
    return await _step(session, order, lambda: repair_desk(request).cancel(session, order, user, now, body.reason))


@router.post("/api/v1/repairs/{order_id}/assign", response_model=RepairOrderOut, summary="Assign (staff)")
async def assign_order(
    order_id: int, body: AssignIn, user: StaffUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    worker = await get_user(session, body.username)
    if worker is None:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no user {body.username!r}")
    now = datetime.now(UTC)
    out = await _step(session, order, lambda: repair_desk(request).assign(session, order, worker, user, now))
    await _announce(request, OrderChange(order, "assigned"))
    return out


@router.post("/api/v1/repairs/{order_id}/rating", response_model=RepairOrderOut, summary="Rate (reporter)")
async def rate_order(
    order_id: int, body: RatingIn, user: CurrentUser, session: SessionDep, request: Request
) -> RepairOrderOut:
    order = await visible_order(session, order_id, user)
    if order.reporter_id != user.id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only its reporter rates an order")
    now = datetime.now(UTC)
    return await _step(session, order, lambda: repair_desk(request).rate(session, order, user, now, body.stars))


@router.get("/api/v1/faults", response_model=list[FaultOut], summary="Faults the rules found (staff, worker)")
async def list_faults(
    user: CrewUser,
    session: SessionDep,
    state: Annotated[str | None, Query(pattern="^(pending|active|cleared)$")] = None,
    device: str | None = None,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FaultOut]:
    query = select(Fault).order_by(Fault.started_at.desc()).limit(limit)
    if state is not None:
        query = query.where(Fault.state == state)
    if device is not None:
        query = query.where(Fault.device == device)
    if rule is not None:
        query = query.where(Fault.rule_id == rule)
    faults = (await session.execute(query)).scalars()
    return [FaultOut.model_validate(fault, from_attributes=True) for fault in faults]
