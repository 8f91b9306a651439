"""The command queue: every command to a device is a row before anything is sent.

A command names a device, one of its model's commands and an action (``relay`` / ``off``). It is queued,
claimed by the process that owns the device's link, sent, and confirmed by reading the device's state back
(or retried with backoff, then failed after ``max_attempts``). A request with a ``key`` is idempotent:
asking twice (a retry after a crash, two processes reacting to one fault) queues one command. A newer
command for the same output supersedes one still queued, so the last word wins and nothing flaps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.inventory import Inventory
from houqin.store import Database
from houqin.store.tables import DeviceCommand

OPEN = ("queued", "sent")


class CommandError(ValueError):
    """A command the device's model does not have (unknown device, command or action)."""


class CommandQueue:
    def __init__(self, database: Database, inventory: Inventory, max_attempts: int = 5, backoff: float = 2.0) -> None:
        self.database = database
        self.inventory = inventory
        self.max_attempts = max_attempts
        self.backoff = backoff

    def check(self, device: str, command: str, action: str) -> None:
        known = self.inventory.devices.get(device)
        if known is None:
            raise CommandError(f"no device {device!r}")
        commands = self.inventory.model_of(known).commands
        if command not in commands:
            raise CommandError(f"{device} has no command {command!r}; it has {', '.join(sorted(commands)) or 'none'}")
        if action not in commands[command].actions:
            actions = ", ".join(sorted(commands[command].actions))
            raise CommandError(f"{device} command {command!r} has no action {action!r}; one of {actions}")

    async def enqueue(
        self,
        device: str,
        command: str,
        action: str,
        now: datetime,
        *,
        source: str,
        reason: str = "",
        requested_by: str = "houqin",
        key: str | None = None,
    ) -> DeviceCommand:
        """Queue a command (or return the one already queued under ``key``)."""
        async with self.database.session() as session:
            try:
                row = await self.enqueue_in(session, device, command, action, now, source=source, reason=reason,
                                            requested_by=requested_by, key=key)  # fmt: skip
                await session.commit()
                return row
            except IntegrityError:
                await session.rollback()
                existing = (await session.execute(select(DeviceCommand).where(DeviceCommand.key == key))).scalar()
                if existing is None:
                    raise
                return existing

    async def enqueue_in(
        self,
        session: AsyncSession,
        device: str,
        command: str,
        action: str,
        now: datetime,
        *,
        source: str,
        reason: str = "",
        requested_by: str = "houqin",
        key: str | None = None,
    ) -> DeviceCommand:
        """Queue a command in the caller's transaction, so that it exists exactly when what caused it does
        (a ledger entry that cuts a room, a schedule that fired)."""
        self.check(device, command, action)
        if key is not None:
            existing = (await session.execute(select(DeviceCommand).where(DeviceCommand.key == key))).scalar()
            if existing is not None:
                return existing
        await session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.device == device, DeviceCommand.command == command, DeviceCommand.state == "queued")
            .values(state="superseded", finished_at=now)
        )
        row = DeviceCommand(device=device, command=command, action=action, state="queued", source=source,
                            reason=reason, requested_by=requested_by, key=key, next_attempt_at=now,
                            created_at=now)  # fmt: skip
        session.add(row)
        await session.flush()
        return row

    async def claim(self, devices: Collection[str], now: datetime, limit: int = 20) -> list[DeviceCommand]:
        """Due commands for ``devices``, marked sent (one attempt more): the caller sends them now.
        On PostgreSQL, rows another process is claiming are skipped, never sent twice."""
        if not devices:
            return []
        async with self.database.session() as session:
            query = (
                select(DeviceCommand)
                .where(
                    DeviceCommand.state == "queued",
                    DeviceCommand.next_attempt_at <= now,
                    DeviceCommand.device.in_(list(devices)),
                )
                .order_by(DeviceCommand.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = list((await session.execute(query)).scalars())
            for row in rows:
                row.state = "sent"
                row.attempts += 1
            await session.commit()
            return rows

    async def confirm(self, command_id: int, now: datetime) -> None:
        async with self.database.session() as session:
            await session.execute(
                update(DeviceCommand).where(DeviceCommand.id == command_id).values(state="confirmed", finished_at=now)
            )
            await session.commit()

    async def failed_attempt(self, command_id: int, now: datetime, error: str) -> str:
        """Record a failed attempt; the command is queued again after a backoff, or failed for good.
        Returns the new state."""
        async with self.database.session() as session:
            row = await session.get(DeviceCommand, command_id)
            if row is None:
                return "failed"
            row.last_error = error[:2000]
            if row.attempts >= self.max_attempts:
                row.state, row.finished_at = "failed", now
            else:
                row.state = "queued"
                row.next_attempt_at = now + timedelta(seconds=self.backoff * 2 ** (row.attempts - 1))
            await session.commit()
            return row.state

    async def recent(self, device: str | None = None, limit: int = 100) -> list[DeviceCommand]:
        async with self.database.session() as session:
            query = select(DeviceCommand).order_by(DeviceCommand.id.desc()).limit(limit)
            if device is not None:
                query = query.where(DeviceCommand.device == device)
            return list((await session.execute(query)).scalars())

    async def requeue_unfinished(self, devices: Collection[str], now: datetime) -> int:
        """Commands left ``sent`` by a process that stopped before it knew the outcome are sent again
        (setting an output to the state it should have is safe to repeat)."""
        if not devices:
            return 0
        async with self.database.session() as session:
            result = await session.execute(
                update(DeviceCommand)
                .where(DeviceCommand.state == "sent", DeviceCommand.device.in_(list(devices)))
                .values(state="queued", next_attempt_at=now)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
