"""Periodic work of a component: run a tick, wait, repeat until stopped; a failed tick is logged and
tried again at the next one (a database hiccup must not end a component's timers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(
    stop: asyncio.Event,
    seconds: float,
    tick: Callable[[], Awaitable[object]],
    what: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Tick every ``seconds``, and at once whenever ``wake`` is set (new work arrived in this process)."""
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        try:
            await tick()
        except Exception:
            log.exception("%s failed; trying again in %.0f s", what, seconds)
        waits = [asyncio.ensure_future(stop.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
