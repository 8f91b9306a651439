"""The zones' schedules, their preview, and what the scheduler fired. Staff and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status

from api.bounds import MAX_ROW_ID, Moment
from api.deps import ScheduleBookDep, StaffUser, TimezoneDep
from api.schedule_schemas import FiringOut, PreviewOut, ScheduleOut, SegmentOut, SoundOut
from houqin.schedules.book import ScheduleConflictError, ScheduleInvalidError
from houqin.schedules.model import ScheduleIn

ScheduleId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="the schedule's id")]

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])

MAX_PREVIEW = timedelta(days=62)


def _schedule_error(exc: Exception) -> HTTPException:
    if isinstance(exc, ScheduleInvalidError):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.problems)
    if isinstance(exc, ScheduleConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\""))


@router.get("", response_model=list[ScheduleOut], summary="Schedules, of a zone or all (staff)")
async def list_schedules(user: StaffUser, book: ScheduleBookDep, zone: str | None = None) -> list[ScheduleOut]:
    return [ScheduleOut.model_validate(row) for row in await book.schedules(zone)]


@router.post(
    "",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a schedule (staff); contradictory entries are a 422 naming them",
)
async def create_schedule(body: ScheduleIn, user: StaffUser, book: ScheduleBookDep) -> ScheduleOut:
    try:
        row = await book.save(body, user.username, datetime.now(UTC))
    except (ScheduleInvalidError, ScheduleConflictError) as exc:
        raise _schedule_error(exc) from None
    return ScheduleOut.model_validate(row)


@router.get(
    "/preview",
    response_model=PreviewOut,
    summary="What a zone will do, and why, between two instants (staff)",
)
async def preview(
    user: StaffUser,
    book: ScheduleBookDep,
    timezone: TimezoneDep,
    zone: str,
    start: Annotated[Moment, Query(alias="from")],
    end: Annotated[Moment, Query(alias="to")],
) -> PreviewOut:
    try:
        found = book.zone(zone)
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\"")) from None
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to must be after from")
    if end - start > MAX_PREVIEW:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_PREVIEW.days} days at once")
    drivers = await book.drivers(start)
    timeline = book.timeline(drivers, found, start, end)
    tz = timezone  # times in the campus's own clock, as staff read timetables
    segments = (
        [
            SegmentOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), state=s.state.action,
                       level=s.state.level, layer=s.layer, cause=s.cause)
            for s in timeline.segments()
        ]
        if found.holds_state
        else []
    )  # fmt: skip
    sounds = [
        SoundOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), action=s.action, programme=s.programme,
                 layer=s.layer, cause=s.cause, suppressed_by=s.suppressed_by)
        for s in timeline.sounds()
    ]  # fmt: skip
    return PreviewOut(zone=zone, kind=found.kind, start=start, end=end, segments=segments, sounds=sounds)


@router.get(
    "/firings",
    response_model=list[FiringOut],
    summary="What the scheduler fired, missed or suppressed, newest first (staff)",
)
async def firings(
    user: StaffUser,
    book: ScheduleBookDep,
    zone: str | None = None,
    start: Annotated[Moment | None, Query(alias="from")] = None,
    end: Annotated[Moment | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FiringOut]:
    rows = await book.firings(zone, start, end, limit)
    return [FiringOut.model_validate(row) for row in rows]


@router.get("/{schedule_id}", response_model=ScheduleOut, summary="One schedule (staff)")
async def read_schedule(schedule_id: ScheduleId, user: StaffUser, book: ScheduleBookDep) -> ScheduleOut:
    row = await book.schedule(schedule_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return ScheduleOut.model_validate(row)


@router.put("/{schedule_id}", response_model=ScheduleOut, summary="Replace a schedule (staff)")
async def replace_schedule(
    schedule_id: ScheduleId, body: Annotated[ScheduleIn, Body()], user: StaffUser, book: ScheduleBookDep
) -> ScheduleOut:
    try:
        row = await book.save(body, user.username, datetime.now(UTC), schedule_id)
    except (ScheduleInvalidError, ScheduleConflictError, KeyError) as exc:
        raise _schedule_error(exc) from None
    return ScheduleOut.model_validate(row)


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a schedule (staff)")
async def delete_schedule(schedule_id: ScheduleId, user: StaffUser, book: ScheduleBookDep) -> Response:
    if not await book.delete(schedule_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
