"""The signed-in user's own account. Any signed-in user."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser
from api.schemas import MeOut

router = APIRouter(prefix="/api/v1", tags=["account"])


@router.get("/me", response_model=MeOut, summary="My account (any signed-in user)")
async def read_me(user: CurrentUser) -> MeOut:
    return MeOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team=user.team,
        rooms=user.room_ids,
    )
