"""A span of the day between two local times, which runs over midnight when it ends before it starts
(22:00-07:00): tariff periods, the protected night of prepaid rooms, the night window of leak rules."""

from __future__ import annotations

from datetime import time


def within(local: time, start: time, end: time) -> bool:
    """``local`` is in [start, end); equal ends span the whole day."""
    return start <= local < end if start < end else local >= start or local < end
