"""Runs houqin's long-lived components side by side in one event loop and stops them together."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Component(Protocol):
    """A long-lived part of the process (API server, a link, the scheduler...)."""

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then return after cleaning up."""
        ...


class Service(Protocol):
    """Something started before the components and stopped after them (a simulator, an embedded broker)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ComponentFailedError(RuntimeError):
    pass


async def supervise(components: Sequence[Component], stop: asyncio.Event, grace: float = 10.0) -> None:
    """Run every component until ``stop`` is set or one of them ends; then stop the rest.

    A component that ends on its own (a crash, or a server that could not start) stops the whole
    process: half a houqin that silently stopped billing or collecting is worse than a restart.
    """
    tasks = [asyncio.create_task(component.run(stop), name=component.name) for component in components]
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    # Components return only after `stop` is set; one that returned before that did so on its own.
    early = [] if stop.is_set() else [task for task in tasks if task.done()]
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        log.warning("component %s did not stop within %.0f s; cancelling it", task.get_name(), grace)
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stopper.cancel()
    failures = [task for task in done if not task.cancelled() and task.exception() is not None]
    for task in failures:
        log.error("component %s failed", task.get_name(), exc_info=task.exception())
    if failures:
        raise ComponentFailedError(", ".join(f"{task.get_name()}: {task.exception()}" for task in failures))
    if early:
        names = ", ".join(task.get_name() for task in early)
        raise ComponentFailedError(f"{names} stopped on its own")


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` so every component shuts down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
