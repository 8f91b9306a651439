"""Repair orders as the API shows them: user ids turned into names, overdue worked out now."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import RepairOrderOut
from houqin.repairs.orders import ACTIVE
from houqin.store.tables import RepairOrder, User


async def user_names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
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


async def order_out(session: AsyncSession, orders: list[RepairOrder]) -> list[RepairOrderOut]:
    names = await user_names(session, [o.reporter_id for o in orders] + [o.assignee_id for o in orders])
    now = datetime.now(UTC)
    return [_out(order, names, now) for order in orders]
