"""The command audit: every device command, newest first, with its status. Staff and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.bounds import Moment
from api.deps import CommandsDep, StaffUser
from api.schedule_schemas import CommandAuditOut
from houqin.store.tables import CommandSource, CommandState

router = APIRouter(prefix="/api/v1/commands", tags=["zones"])


@router.get(
    "",
    response_model=list[CommandAuditOut],
    summary="Device commands, newest first, with their status (staff)",
)
async def command_audit(
    user: StaffUser,
    queue: CommandsDep,
    device: str | None = None,
    zone: str | None = None,
    state: CommandState | None = None,
    source: CommandSource | None = None,
    start: Annotated[Moment | None, Query(alias="from")] = None,
    end: Annotated[Moment | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandAuditOut]:
    rows = await queue.recent(device, limit, state=state, source=source, zone=zone, since=start, until=end)
    return [CommandAuditOut.model_validate(row) for row in rows]
