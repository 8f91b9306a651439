"""Accounts as staff see them: who can be assigned a repair order. Staff and admins only; no secrets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import SessionDep, StaffUser
from api.schemas import UserOut
from houqin.store.tables import Role, User

router = APIRouter(prefix="/api/v1/users", tags=["account"])


@router.get("", response_model=list[UserOut], summary="Accounts, by role and team (staff)")
async def list_users(
    _user: StaffUser,
    session: SessionDep,
    role: Annotated[Role | None, Query()] = None,
    team: str | None = None,
    active: bool | None = True,
) -> list[UserOut]:
    query = select(User).order_by(User.username)
    if role is not None:
        query = query.where(User.role == role.value)
    if team is not None:
        query = query.where(User.team == team)
    if active is not None:
        query = query.where(User.active.is_(active))
    return [UserOut.model_validate(user, from_attributes=True) for user in (await session.execute(query)).scalars()]
