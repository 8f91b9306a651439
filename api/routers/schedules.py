"""The zones' schedules, their preview, and what the scheduler fired. Staff and admins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status

from api.bounds import MAX_ROW_ID, Moment
from api.deps import ScheduleBookDep, StaffUser, TimezoneDep
from api.schedule_schemas import DraftPreviewIn, FiringOut, PreviewOut, ScheduleOut, SegmentOut, SoundOut
from houqin.inventory.model import Zone
from houqin.schedules.book import ScheduleBook, ScheduleConflictError, ScheduleInvalidError, ZoneDrivers
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
    found = _zone(book, zone)
    _window(start, end)
    return _preview(book, found, await book.drivers(start), start, end, timezone)


@router.post(
    "/preview",
    response_model=PreviewOut,
    summary="What a zone would do with a schedule not saved yet, in place of the one it edits (staff)",
)
async def preview_draft(
    body: DraftPreviewIn, user: StaffUser, book: ScheduleBookDep, timezone: TimezoneDep
) -> PreviewOut:
    found = _zone(book, body.schedule.zone)
    _window(body.start, body.end)
    try:
        drivers = book.with_draft(await book.drivers(body.start), body.schedule, body.replaces)
    except ScheduleInvalidError as exc:
        raise _schedule_error(exc) from None
    return _preview(book, found, drivers, body.start, body.end, timezone)


def _zone(book: ScheduleBook, zone: str) -> Zone:
    try:
        return book.zone(zone)
    except KeyError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\"")) from None


def _window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to must be after from")
    if end - start > MAX_PREVIEW:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_PREVIEW.days} days at once")


def _preview(
    book: ScheduleBook, zone: Zone, drivers: ZoneDrivers, start: datetime, end: datetime, tz: ZoneInfo
) -> PreviewOut:
    """The timeline in the campus's own clock, as staff read timetables."""
    timeline = book.timeline(drivers, zone, start, end)
    segments = (
        [
            SegmentOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), state=s.state.action,
                       level=s.state.level, layer=s.layer, cause=s.cause)
            for s in timeline.segments()
        ]
        if zone.holds_state
        else []
    )  # fmt: skip
    sounds = [
        SoundOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), action=s.action, programme=s.programme,
                 layer=s.layer, cause=s.cause, suppressed_by=s.suppressed_by)
        for s in timeline.sounds()
    ]  # fmt: skip
    return PreviewOut(zone=zone.id, kind=zone.kind, start=start, end=end, segments=segments, sounds=sounds)


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
