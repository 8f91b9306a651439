"""The ranges every number, day and moment the API takes must lie in, checked at the edge: an id past 64
bits or the year 9999 is a 422 with a sentence, never a 500 from the database or the calendar arithmetic
behind the route."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator

MAX_ROW_ID = 2**63 - 1  # the largest id a database row can have (BIGINT)
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2199, 12, 31)
# Moments a day either side of the day range, so that a day's local midnight anywhere on Earth is in it.
FIRST_MOMENT = datetime(1969, 12, 31, tzinfo=UTC)
LAST_MOMENT = datetime(2200, 1, 2, tzinfo=UTC)
MONTH_PATTERN = r"^(19[7-9][0-9]|2[01][0-9]{2})-(0[1-9]|1[0-2])$"  # YYYY-MM from 1970-01 to 2199-12


def _day_in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"a day from {FIRST_DAY} to {LAST_DAY}")
    return day


def _moment_in_range(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. +08:00 or Z")
    if not FIRST_MOMENT <= moment <= LAST_MOMENT:
        raise ValueError(f"a moment from {FIRST_DAY} to {LAST_DAY}")
    return moment


Day = Annotated[date, AfterValidator(_day_in_range)]
Moment = Annotated[datetime, AfterValidator(_moment_in_range)]  # with its UTC offset
