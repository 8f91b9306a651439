"""The command queue: every command to a device is a row before anything is sent.

A command (a ``CommandRequest``) names a device, one of its model's commands and an action (``relay`` /
``off``). It is queued, claimed by the process that owns the device's link, sent, and confirmed by reading
the device's state back (or retried with backoff, then failed after ``max_attempts``). A request with a
``key`` is idempotent: asking twice (a retry after a crash, two processes reacting to one fault) queues one
command. A newer command for the same output supersedes one still queued, so the last word wins and nothing
flaps.

A command may carry arguments (a dim level, a programme and its duration) and a deadline: it is not sent
after it, and retries stop there (a bell rung late is worse than none). A command that fails for good is
handed to ``on_failed`` (houqin raises a fault on the device, which opens a repair order); a confirmed one
to ``on_confirmed`` (which clears it). Dispatchers in this process are woken at once by ``notify``.

A dispatcher may also take commands straight from the transaction that queues them (``send_directly``,
``handover``): those for its devices with nothing in flight are written ``sent`` and handed to it after
the commit, with no claim in between. The row still exists before anything is sent, and a stop between the
commit and the send leaves it ``sent``, which the next start sends again (``requeue_unfinished``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from houqin.backoff import Backoff
from houqin.commands.handover import DirectSender, Handover, write_commands
from houqin.commands.request import CommandError, CommandRequest
from houqin.inventory import Inventory
from houqin.store import Database
from houqin.store.tables import CommandSource, CommandState, DeviceCommand, HouqinProcess

OPEN = (CommandState.QUEUED, CommandState.SENT)
LATE = "not sent by its deadline"

CommandHook = Callable[[DeviceCommand], Awaitable[None]]


class CommandQueue:
    def __init__(
        self,
        database: Database,
        inventory: Inventory,
        max_attempts: int = 5,
        backoff: float = 2.0,
        on_failed: CommandHook | None = None,
        on_confirmed: CommandHook | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Dispatchers read time from here: a test that drives the scheduler's clock drives theirs too.
        self.clock = clock
        self.database = database
        self.inventory = inventory
        self.max_attempts = max_attempts
        self.retry = Backoff(backoff)  # no jitter: a command's retries are part of its audit trail
        self.on_failed = on_failed
        self.on_confirmed = on_confirmed
        self._listeners: list[asyncio.Event] = []
        self._direct_senders: list[DirectSender] = []
        self._confirming: list[tuple[int, datetime, asyncio.Future[None]]] = []
        self._confirm_lock = asyncio.Lock()

    def listen(self) -> asyncio.Event:
        """An event set whenever this process queues a command: a dispatcher waits on it between ticks."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    def notify(self) -> None:
        """Wake this process's dispatchers (after the transaction that queued commands committed)."""
        for event in self._listeners:
            event.set()

    def send_directly(self, sender: DirectSender) -> None:
        """Hand ``sender`` the commands for its devices as soon as the transaction queuing them commits."""
        self._direct_senders.append(sender)

    def direct_sender(self, device: str, now: datetime, deadline: datetime | None = None) -> DirectSender | None:
        """The sender that reserved ``device`` for a command due now, if one can take it at once."""
        if deadline is not None and deadline < now:
            return None  # a claim fails it, as it fails every command past its deadline
        return next((sender for sender in self._direct_senders if sender.reserve(device)), None)

    def handover(self) -> Handover:
        """``async with queue.handover() as handover:`` around a transaction that queues commands."""
        return Handover(self)

    def check(self, device: str, command: str, action: str, arguments: Mapping[str, Any] | None = None) -> None:
        known = self.inventory.devices.get(device)
        if known is None:
            raise CommandError(f"no device {device!r}")
        commands = self.inventory.model_of(known).commands
        if command not in commands:
            raise CommandError(f"{device} has no command {command!r}; it has {', '.join(sorted(commands)) or 'none'}")
        if action not in commands[command].actions:
            actions = ", ".join(sorted(commands[command].actions))
            raise CommandError(f"{device} command {command!r} has no action {action!r}; one of {actions}")
        missing = sorted(commands[command].arguments_of(action) - set(arguments or {}))
        if missing:
            raise CommandError(f"{device} command {command!r} action {action!r} needs {', '.join(missing)}")

    async def enqueue(self, request: CommandRequest, now: datetime) -> DeviceCommand:
        """Queue a command (or return the one already queued under its ``key``)."""
        async with self.database.session() as session:
            try:
                row = await self.enqueue_in(session, request, now)
                await session.commit()
                self.notify()
                return row
            except IntegrityError:
                await session.rollback()
                query = select(DeviceCommand).where(DeviceCommand.key == request.key)
                existing = (await session.execute(query)).scalar()
                if existing is None:
                    raise
                return existing

    async def enqueue_in(self, session: AsyncSession, request: CommandRequest, now: datetime) -> DeviceCommand:
        """Queue a command in the caller's transaction, so that it exists exactly when what caused it does
        (a ledger entry that cuts a room, a fault that trips a relay). The caller calls ``notify`` after
        commit. Written by the same path as a schedule's commands (``write_commands``)."""
        self.check(request.device, request.command, request.action, request.arguments)
        if request.key is not None:
            query = select(DeviceCommand).where(DeviceCommand.key == request.key)
            existing = (await session.execute(query)).scalar()
            if existing is not None:
                return existing
        [written] = await write_commands(await session.connection(), [request], now)
        row = await session.get(DeviceCommand, written.id)
        assert row is not None  # written in this very transaction
        return row

    async def claim(self, devices: Collection[str], now: datetime, limit: int = 20) -> list[DeviceCommand]:
        """Due commands for ``devices``, marked sent (one attempt more): the caller sends them now, in the
        order they were queued. Ones past their deadline are failed instead (and handed to ``on_failed``).
        On PostgreSQL, rows another process is claiming are skipped, never sent twice."""
        if not devices:
            return []
        async with self.database.session() as session:
            # Dispatchers ask twice a second and mostly find nothing: which devices have a command due is a
            # small read on the state index, where the claim names every device it may take (hundreds).
            due = select(DeviceCommand.device).distinct()
            due = due.where(DeviceCommand.state == CommandState.QUEUED, DeviceCommand.next_attempt_at <= now)
            wanted = sorted(set((await session.execute(due)).scalars()).intersection(devices))
            if not wanted:
                return []
            # One statement for the whole batch, the rows back from it: hundreds of zones fire the same
            # second, and their commands are on the wire one round trip after they were committed.
            picked = (
                select(DeviceCommand.id)
                .where(
                    DeviceCommand.state == CommandState.QUEUED,
                    DeviceCommand.next_attempt_at <= now,
                    DeviceCommand.device.in_(wanted),
                )
                .order_by(DeviceCommand.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
                .cte("picked")
            )
            in_time = or_(DeviceCommand.deadline.is_(None), DeviceCommand.deadline >= now)
            claimed = (
                update(DeviceCommand)
                .where(DeviceCommand.id.in_(select(picked.c.id)))
                .values(
                    state=case((in_time, CommandState.SENT.value), else_=CommandState.FAILED.value),
                    attempts=case((in_time, DeviceCommand.attempts + 1), else_=DeviceCommand.attempts),
                    sent_at=case((in_time, now), else_=DeviceCommand.sent_at),
                    finished_at=case((in_time, DeviceCommand.finished_at), else_=now),
                    last_error=case((in_time, DeviceCommand.last_error), else_=LATE),
                )
                .returning(DeviceCommand)
                .execution_options(synchronize_session=False)
            )
            rows = sorted((await session.execute(claimed)).scalars(), key=lambda row: row.id)
            await session.commit()
        for row in rows:
            if row.state == CommandState.FAILED:
                await self._failed_for_good(row)
        return [row for row in rows if row.state == CommandState.SENT]

    async def confirm(self, command_id: int, now: datetime) -> None:
        """Confirm one command. Confirmations that arrive while one is being written are written together
        next (a group commit): at a curfew, every bus confirms a relay every few tens of milliseconds, and a
        transaction each kept the store busier than the buses."""
        done = asyncio.get_running_loop().create_future()
        self._confirming.append((command_id, now, done))
        async with self._confirm_lock:
            if not done.done():
                batch, self._confirming = self._confirming, []
                try:
                    await self.confirm_many([command for command, _, _ in batch], max(at for _, at, _ in batch))
                except Exception as exc:
                    for _, _, waiting in batch:
                        waiting.set_exception(exc)
                else:
                    for _, _, waiting in batch:
                        waiting.set_result(None)
        await done

    async def confirm_many(self, command_ids: Sequence[int], now: datetime) -> None:
        """Confirm several commands in one transaction (only those still sent: a late echo of a command that
        already failed does not revive it)."""
        async with self.database.session() as session:
            result = await session.execute(
                update(DeviceCommand)
                .where(DeviceCommand.id.in_(list(command_ids)), DeviceCommand.state == CommandState.SENT)
                .values(state=CommandState.CONFIRMED, finished_at=now)
                .returning(DeviceCommand.id, DeviceCommand.device)
            )
            confirmed = result.all()
            await session.commit()
        if self.on_confirmed is not None:
            for command_id, device in confirmed:
                await self.on_confirmed(DeviceCommand(id=command_id, device=device))

    async def in_flight(self, devices: Collection[str]) -> list[DeviceCommand]:
        """The commands sent to ``devices`` and not yet confirmed or failed (by whichever process sent them)."""
        async with self.database.session() as session:
            query = select(DeviceCommand).where(
                DeviceCommand.state == CommandState.SENT, DeviceCommand.device.in_(list(devices))
            )
            return list((await session.execute(query)).scalars())

    async def still_sent(self, command_ids: Collection[int]) -> set[int]:
        """Of ``command_ids``, those still waiting for their confirmation."""
        async with self.database.session() as session:
            query = select(DeviceCommand.id).where(
                DeviceCommand.id.in_(list(command_ids)), DeviceCommand.state == CommandState.SENT
            )
            return set((await session.execute(query)).scalars())

    async def failed_attempt(self, command_id: int, now: datetime, error: str, for_good: bool = False) -> str:
        """Record a failed attempt; the command is queued again after a backoff, or failed for good (after
        its attempts, when the next one would come after its deadline, or at once when ``for_good``: a
        device that refuses the password will refuse it again), or superseded when a newer command for the
        same output was queued meanwhile (retrying the older would undo it). Returns the new state."""
        async with self.database.session() as session:
            row = await session.get(DeviceCommand, command_id, with_for_update=True)
            if row is None:
                return CommandState.FAILED
            if row.state != CommandState.SENT:
                return row.state  # confirmed meanwhile (by another process's share of the state messages)
            row.last_error = error[:2000]
            retry_at = now + timedelta(seconds=self.retry.delay(row.attempts))
            if for_good or row.attempts >= self.max_attempts or (row.deadline is not None and retry_at > row.deadline):
                row.state, row.finished_at = CommandState.FAILED, now
            elif await self._newer_for_output(session, row):
                row.state, row.finished_at = CommandState.SUPERSEDED, now
            else:
                row.state = CommandState.QUEUED
                row.next_attempt_at = retry_at
            await session.commit()
        if row.state == CommandState.FAILED:
            await self._failed_for_good(row)
        return row.state

    @staticmethod
    async def _newer_for_output(session: AsyncSession, row: DeviceCommand) -> bool:
        newer = select(DeviceCommand.id).where(
            DeviceCommand.device == row.device, DeviceCommand.command == row.command, DeviceCommand.id > row.id
        )
        return (await session.execute(newer.limit(1))).first() is not None

    async def _failed_for_good(self, row: DeviceCommand) -> None:
        if self.on_failed is not None:
            await self.on_failed(row)

    async def recent(
        self,
        device: str | None = None,
        limit: int = 100,
        *,
        state: CommandState | None = None,
        source: CommandSource | None = None,
        zone: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeviceCommand]:
        """The newest commands first, filtered by device, state, source, zone and creation time."""
        async with self.database.session() as session:
            query = select(DeviceCommand).order_by(DeviceCommand.id.desc()).limit(limit)
            if device is not None:
                query = query.where(DeviceCommand.device == device)
            if state is not None:
                query = query.where(DeviceCommand.state == state)
            if source is not None:
                query = query.where(DeviceCommand.source == source)
            if zone is not None:
                query = query.where(DeviceCommand.zone == zone)
            if since is not None:
                query = query.where(DeviceCommand.created_at >= since)
            if until is not None:
                query = query.where(DeviceCommand.created_at < until)
            return list((await session.execute(query)).scalars())

    async def processes_alive(self, within: timedelta) -> int:
        """How many houqin processes on this database were heard of within ``within`` (this one included,
        once it has registered; see ``assembly.peers``)."""
        async with self.database.session() as session:
            since = select(func.now()).scalar_subquery() - within
            count = await session.scalar(select(func.count()).where(HouqinProcess.seen_at > since))
            return int(count or 0)

    async def unclaim(self, ids: Collection[int], now: datetime) -> int:
        """Claimed commands this process will not send after all (its gateway went to another process):
        queued again as if never claimed, for the gateway's new owner to send."""
        if not ids:
            return 0
        async with self.database.session() as session:
            result = await session.execute(
                update(DeviceCommand)
                .where(DeviceCommand.id.in_(list(ids)), DeviceCommand.state == CommandState.SENT)
                .values(state=CommandState.QUEUED, attempts=DeviceCommand.attempts - 1, next_attempt_at=now)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def requeue_unfinished(
        self, devices: Collection[str], now: datetime, sent_before: datetime | None = None
    ) -> int:
        """Commands left ``sent`` by a process that stopped before it knew the outcome are sent again
        (setting an output to the state it should have is safe to repeat). ``sent_before``: only those sent
        before it — with several processes, a newer one may be another live process's, waiting for its
        confirmation."""
        if not devices:
            return 0
        stale = [DeviceCommand.state == CommandState.SENT, DeviceCommand.device.in_(list(devices))]
        if sent_before is not None:
            stale.append(DeviceCommand.sent_at < sent_before)
        async with self.database.session() as session:
            result = await session.execute(
                update(DeviceCommand).where(*stale).values(state=CommandState.QUEUED, next_attempt_at=now)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
