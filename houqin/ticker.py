"""Periodic work of a component: run a tick, wait, repeat until stopped; a failed tick is logged and
tried again at the next one (a database hiccup must not end a component's timers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(stop: asyncio.Event, seconds: float, tick: Callable[[], Awaitable[object]], what: str) -> None:
    while not stop.is_set():
        try:
            await tick()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
