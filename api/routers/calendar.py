"""The school calendar: terms, and days whose type is set by hand (holidays, make-up days, exam weeks).

Who may do what: anyone signed in reads it; staff and admins change it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from api.bounds import Day
from api.deps import CurrentUser, ScheduleBookDep, StaffUser, TimezoneDep
from api.request_body import body_within
from api.schedule_schemas import CalendarDayIn, CalendarDayOut, CalendarImportOut, CalendarOut, TermIn, TermOut
from houqin.config_file import ConfigError
from houqin.schedules.calendar import WEEKDAYS, CalendarImport, SpecialDay, Term, parse_calendar

router = APIRouter(prefix="/api/v1/calendar", tags=["schedules"])

MAX_CALENDAR_DAYS = 400
MAX_CALENDAR_BYTES = 1 << 20


@router.get("", response_model=CalendarOut, summary="Terms and each day's type (anyone signed in)")
async def read_calendar(
    user: CurrentUser,
    book: ScheduleBookDep,
    timezone: TimezoneDep,
    start: Annotated[Day | None, Query(alias="from", description="first day (default: today)")] = None,
    end: Annotated[Day | None, Query(alias="to", description="last day, inclusive (default: 6 weeks on)")] = None,
) -> CalendarOut:
    today = datetime.now(timezone).date()
    first = start or today
    last = end or first + timedelta(days=41)
    if last < first:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "to is before from")
    if (last - first).days >= MAX_CALENDAR_DAYS:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"at most {MAX_CALENDAR_DAYS} days at once")
    calendar = await book.calendar()
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


@router.put("/days/{day}", response_model=CalendarDayOut, summary="Set a day's type (staff)")
async def set_day(day: Day, body: CalendarDayIn, user: StaffUser, book: ScheduleBookDep) -> CalendarDayOut:
    follows = WEEKDAYS.index(body.follows) if body.follows is not None else None
    await book.set_day(SpecialDay(day, body.type, follows, body.note))
    return CalendarDayOut(
        date=day,
        type=body.type,
        timetable=body.follows or WEEKDAYS[day.weekday()],
        note=body.note,
        set_by_hand=True,
    )


@router.delete(
    "/days/{day}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Give a day back to its term and weekday (staff)",
)
async def clear_day(day: Day, user: StaffUser, book: ScheduleBookDep) -> Response:
    if not await book.clear_day(day):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{day} is not set by hand")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/terms/{name}", response_model=TermOut, summary="Create or change a term (staff)")
async def put_term(name: str, body: TermIn, user: StaffUser, book: ScheduleBookDep) -> TermOut:
    if not 1 <= len(name) <= 64:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "a term name is 1-64 characters")
    await book.import_calendar(CalendarImport([Term(name, body.start, body.end)], []))
    return TermOut(name=name, start=body.start, end=body.end)


@router.delete("/terms/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a term (staff)")
async def delete_term(name: str, user: StaffUser, book: ScheduleBookDep) -> Response:
    if not await book.delete_term(name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no term {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/import",
    response_model=CalendarImportOut,
    summary="Import a calendar file (staff): YAML with terms and days; adds or replaces what it names",
    openapi_extra={"requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}, "required": True}},
)
async def import_calendar(user: StaffUser, book: ScheduleBookDep, request: Request) -> CalendarImportOut:
    raw = await body_within(request, MAX_CALENDAR_BYTES, "a calendar file")
    try:
        # Parsing a megabyte of YAML takes a second of CPU: not on the loop that answers everyone else.
        content = await run_in_threadpool(parse_calendar, raw.decode("utf-8"), "calendar")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the calendar file is not UTF-8 text") from None
    except ConfigError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [str(issue) for issue in exc.issues]) from None
    await book.import_calendar(content)
    return CalendarImportOut(terms=len(content.terms), days=len(content.days))
