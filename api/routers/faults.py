"""Faults the rules engine found. Staff, admins and maintenance workers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import CrewUser, SessionDep
from api.schemas import FaultOut
from houqin.store.tables import Fault

router = APIRouter(prefix="/api/v1/faults", tags=["repairs"])


@router.get("", response_model=list[FaultOut], summary="Faults the rules found (staff, worker)")
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
