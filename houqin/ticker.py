"""Periodic work of a component: run a tick, wait, repeat until stopped; a failed tick is logged and
tried again at the next one (a database hiccup must not end a component's timers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

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
        await wait_first(stop, *([wake] if wake is not None else []), seconds=seconds)


async def wait_first(
    *events: asyncio.Event, seconds: float | None = None, task: asyncio.Future[Any] | None = None
) -> None:
    """Wait until one of ``events`` is set, ``task`` ends, or ``seconds`` pass."""
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait([*waits, *([task] if task is not None else [])], timeout=seconds,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    finally:
        for waiter in waits:
            waiter.cancel()
