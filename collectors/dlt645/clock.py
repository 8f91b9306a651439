"""The daily time broadcast (0x08) to every DL/T 645 bus: meters that bill by time of use need their
clocks right, and a meter's quartz drifts seconds a week. The broadcast goes at a quiet hour (03:00 by
default, ``HOUQIN_DLT645__TIME_SYNC_AT``) in the campus's time, through each bus's link, so it waits its
turn between polls like any request; meters do not answer it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from collectors.dlt645.link import Dlt645Link
from collectors.link_errors import LinkError

log = logging.getLogger(__name__)


def next_sync(at: time, now: datetime) -> datetime:
    """The next ``at`` (local, in ``now``'s zone) strictly after ``now``."""
    today = datetime.combine(now.date(), at, now.tzinfo)
    return today if today > now else datetime.combine(now.date() + timedelta(days=1), at, now.tzinfo)


class Dlt645Clock:
    """A component of ``houqin run`` where the process polls 645 buses."""

    def __init__(self, links: list[Dlt645Link], at: time, timezone: ZoneInfo) -> None:
        self.links = links
        self.at = at
        self.timezone = timezone
        self.broadcasts = 0
        # With several collecting processes, each syncs the buses it owns (``collectors.ownership``).
        self.owns: Callable[[str], bool] = lambda gateway: True

    @property
    def name(self) -> str:
        return "dlt645:time-sync"

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = datetime.now(self.timezone)
            wait = (next_sync(self.at, now) - now).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
                return
            await self.broadcast()

    async def broadcast(self) -> None:
        """Send the time now to every bus (the meters' clocks are the campus's local time)."""
        sent = 0
        for link in self.links:
            if not self.owns(link.name):
                continue
            try:
                await link.broadcast_time(datetime.now(self.timezone).replace(tzinfo=None))
            except LinkError as exc:
                log.warning("time sync on %s not sent: %s", link.name, exc)
                continue
            sent += 1
        self.broadcasts += sent
        log.info("broadcast the time to %d of %d DL/T 645 bus(es)", sent, len(self.links))
