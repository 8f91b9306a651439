"""The school calendar and the zones' schedules, their preview, and what the scheduler fired.

Who may do what: anyone signed in reads the calendar; staff and admins change it, and read and change
schedules, previews and firings.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from pydantic import AwareDatetime

from api.deps import CurrentUser, StaffUser
from api.schedule_schemas import (
    CalendarDayIn,
    CalendarDayOut,
    CalendarImportOut,
    CalendarOut,
    FiringOut,
    PreviewOut,
    ScheduleOut,
    SegmentOut,
    SoundOut,
    TermIn,
    TermOut,
)
from houqin.config_file import ConfigError
from houqin.schedules.book import ScheduleBook, ScheduleConflictError, ScheduleInvalidError
from houqin.schedules.calendar import WEEKDAYS, CalendarImport, SpecialDay, Term, parse_calendar
from houqin.schedules.model import ScheduleIn

router = APIRouter(tags=["schedules"])

MAX_CALENDAR_DAYS = 400
MAX_PREVIEW = timedelta(days=62)


def book_of(request: Request) -> ScheduleBook:
    book: ScheduleBook = request.app.state.schedules
    return book


# --- calendar -------------------------------------------------------------------------------------------


@router.get("/api/v1/calendar", response_model=CalendarOut, summary="Terms and each day's type (anyone signed in)")
async def read_calendar(
    user: CurrentUser,
    request: Request,
    start: Annotated[date | None, Query(alias="from", description="first day (default: today)")] = None,
    end: Annotated[date | None, Query(alias="to", description="last day, inclusive (default: 6 weeks on)")] = None,
) -> CalendarOut:
    today = datetime.now(request.app.state.settings.tz).date()
    first = start or today
    last = end or first + timedelta(days=41)
    if last < first:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to is before from")
    if (last - first).days >= MAX_CALENDAR_DAYS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_CALENDAR_DAYS} days at once")
    calendar = await book_of(request).calendar()
    return CalendarOut(
        terms=[TermOut(name=term.name, start=term.start, end=term.end) for term in calendar.terms],
        days=[
            CalendarDayOut(
                date=day.day,
                type=day.day_type,
                timetable=day.weekday_name,
                note=day.note,
                set_by_hand=day.set_by_hand,
            )
            for day in calendar.span(first, last)
        ],
    )


@router.put("/api/v1/calendar/days/{day}", response_model=CalendarDayOut, summary="Set a day's type (staff)")
async def set_day(day: date, body: CalendarDayIn, user: StaffUser, request: Request) -> CalendarDayOut:
    follows = WEEKDAYS.index(body.follows) if body.follows is not None else None
    await book_of(request).set_day(SpecialDay(day, body.type, follows, body.note))
    return CalendarDayOut(
        date=day,
        type=body.type,
        timetable=body.follows or WEEKDAYS[day.weekday()],
        note=body.note,
        set_by_hand=True,
    )


@router.delete(
    "/api/v1/calendar/days/{day}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Give a day back to its term and weekday (staff)",
)
async def clear_day(day: date, user: StaffUser, request: Request) -> Response:
    if not await book_of(request).clear_day(day):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{day} is not set by hand")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/api/v1/calendar/terms/{name}", response_model=TermOut, summary="Create or change a term (staff)")
async def put_term(name: str, body: TermIn, user: StaffUser, request: Request) -> TermOut:
    if not 1 <= len(name) <= 64:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a term name is 1-64 characters")
    await book_of(request).import_calendar(CalendarImport([Term(name, body.start, body.end)], []))
    return TermOut(name=name, start=body.start, end=body.end)


@router.delete("/api/v1/calendar/terms/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a term (staff)")
async def delete_term(name: str, user: StaffUser, request: Request) -> Response:
    if not await book_of(request).delete_term(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no term {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/calendar/import",
    response_model=CalendarImportOut,
    summary="Import a calendar file (staff): YAML with terms and days; adds or replaces what it names",
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}, "required": True}},
)
async def import_calendar(user: StaffUser, request: Request) -> CalendarImportOut:
    raw = await request.body()
    if len(raw) > 1 << 20:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "a calendar file is at most 1 MiB")
    try:
        content = parse_calendar(raw.decode("utf-8"), "calendar")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the calendar file is not UTF-8 text") from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [str(issue) for issue in exc.issues]) from None
    await book_of(request).import_calendar(content)
    return CalendarImportOut(terms=len(content.terms), days=len(content.days))


# --- schedules ------------------------------------------------------------------------------------------


def _schedule_error(exc: Exception) -> HTTPException:
    if isinstance(exc, ScheduleInvalidError):
        return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, exc.problems)
    if isinstance(exc, ScheduleConflictError):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc).strip("'\""))


@router.get("/api/v1/schedules", response_model=list[ScheduleOut], summary="Schedules, of a zone or all (staff)")
async def list_schedules(user: StaffUser, request: Request, zone: str | None = None) -> list[ScheduleOut]:
    return [ScheduleOut.model_validate(row) for row in await book_of(request).schedules(zone)]


@router.post(
    "/api/v1/schedules",
    response_model=ScheduleOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create a schedule (staff); contradictory entries are a 422 naming them",
)
async def create_schedule(body: ScheduleIn, user: StaffUser, request: Request) -> ScheduleOut:
    try:
        row = await book_of(request).save(body, user.username, datetime.now(UTC))
    except (ScheduleInvalidError, ScheduleConflictError) as exc:
        raise _schedule_error(exc) from None
    return ScheduleOut.model_validate(row)


@router.get(
    "/api/v1/schedules/preview",
    response_model=PreviewOut,
    summary="What a zone will do, and why, between two instants (staff)",
)
async def preview(
    user: StaffUser,
    request: Request,
    zone: str,
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime, Query(alias="to")],
) -> PreviewOut:
    book = book_of(request)
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
    tz = request.app.state.settings.tz  # times in the campus's own clock, as staff read timetables
    segments = (
        [
            SegmentOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), state=s.state.action,
                       level=s.state.level, layer=s.layer, cause=s.cause)
            for s in timeline.segments()
        ]
        if found.kind == "lighting"
        else []
    )  # fmt: skip
    sounds = [
        SoundOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), action=s.action, programme=s.programme,
                 layer=s.layer, cause=s.cause, suppressed_by=s.suppressed_by)
        for s in timeline.sounds()
    ]  # fmt: skip
    return PreviewOut(zone=zone, kind=found.kind, start=start, end=end, segments=segments, sounds=sounds)


@router.get(
    "/api/v1/schedules/firings",
    response_model=list[FiringOut],
    summary="What the scheduler fired, missed or suppressed, newest first (staff)",
)
async def firings(
    user: StaffUser,
    request: Request,
    zone: str | None = None,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[FiringOut]:
    rows = await book_of(request).firings(zone, start, end, limit)
    return [FiringOut.model_validate(row) for row in rows]


@router.get("/api/v1/schedules/{schedule_id}", response_model=ScheduleOut, summary="One schedule (staff)")
async def read_schedule(schedule_id: int, user: StaffUser, request: Request) -> ScheduleOut:
    row = await book_of(request).schedule(schedule_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return ScheduleOut.model_validate(row)


@router.put("/api/v1/schedules/{schedule_id}", response_model=ScheduleOut, summary="Replace a schedule (staff)")
async def replace_schedule(
    schedule_id: int, body: Annotated[ScheduleIn, Body()], user: StaffUser, request: Request
) -> ScheduleOut:
    try:
        row = await book_of(request).save(body, user.username, datetime.now(UTC), schedule_id)
    except (ScheduleInvalidError, ScheduleConflictError, KeyError) as exc:
        raise _schedule_error(exc) from None
    return ScheduleOut.model_validate(row)


@router.delete(
    "/api/v1/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a schedule (staff)"
)
async def delete_schedule(schedule_id: int, user: StaffUser, request: Request) -> Response:
    if not await book_of(request).delete(schedule_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no schedule {schedule_id}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
