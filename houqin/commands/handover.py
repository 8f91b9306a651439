"""Writing commands into the queue — the one insert path and the one supersede rule — and handing them on
when the transaction that wrote them has committed: straight to a dispatcher of this process that can send
at once, or to the dispatchers' next claim."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from houqin.commands.request import CommandRequest
from houqin.store.tables import CommandState, DeviceCommand

if TYPE_CHECKING:
    from houqin.commands.queue import CommandQueue

_COMMANDS: Table = DeviceCommand.__table__  # type: ignore[assignment]
# Core, not the ORM: hundreds of zones fire in the same second. The ids come back in the rows' order.
_INSERT = _COMMANDS.insert().returning(_COMMANDS.c.id, sort_by_parameter_order=True)
_CHUNK = 400  # ids per IN (...) list


class Sendable(Protocol):
    """What a dispatcher reads of a command to send it: a claimed row, or an ``Outgoing`` handed over."""

    @property
    def id(self) -> int: ...
    @property
    def device(self) -> str: ...
    @property
    def command(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def arguments(self) -> dict[str, Any] | None: ...
    @property
    def correlation_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A command committed ``sent`` and handed to its dispatcher. Not an ORM row: building hundreds of those
    cost more than writing them."""

    id: int
    device: str
    command: str
    action: str
    arguments: dict[str, Any] | None
    correlation_id: str


class DirectSender(Protocol):
    """A dispatcher of this process that sends commands the moment the transaction queuing them commits."""

    def reserve(self, device: str) -> bool:
        """Hold ``device`` for a command about to be written ``sent``; False when it is not this sender's,
        has a command in flight, or cannot be reached now."""
        ...

    def release(self, device: str) -> None:
        """The transaction that reserved ``device`` did not commit."""
        ...

    def deliver(self, command: Outgoing) -> None:
        """Send ``command``, committed ``sent`` (one attempt) for a device this sender reserved."""
        ...


@dataclass(frozen=True, slots=True)
class Written:
    """A command as it was written: its id, its row, and the sender that took it (None: written queued)."""

    id: int
    row: dict[str, Any]
    sender: DirectSender | None


async def supersede(connection: AsyncConnection, outputs: set[tuple[str, str]], now: datetime) -> None:
    """A newer command for an output supersedes the older one still waiting to be sent, so the last word wins
    and nothing flaps. The waiting ones are few (retries in their backoff), so they are read and matched
    here, not by a 500-pair IN list."""
    waiting = await connection.execute(
        select(DeviceCommand.id, DeviceCommand.device, DeviceCommand.command).where(
            DeviceCommand.state == CommandState.QUEUED
        )
    )
    older = [command_id for command_id, device, command in waiting if (device, command) in outputs]
    for start in range(0, len(older), _CHUNK):
        await connection.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id.in_(older[start : start + _CHUNK]), DeviceCommand.state == CommandState.QUEUED)
            .values(state=CommandState.SUPERSEDED, finished_at=now)
        )


async def write_commands(
    connection: AsyncConnection,
    requests: Sequence[CommandRequest],
    now: datetime,
    sender_for: Callable[[CommandRequest], DirectSender | None] | None = None,
) -> list[Written]:
    """Insert ``requests`` in the caller's transaction, superseding the older ones still queued for the same
    outputs. Those ``sender_for`` finds a direct sender for are written ``sent`` (one attempt made); the rest
    ``queued``."""
    await supersede(connection, {request.output for request in requests}, now)
    rows: list[dict[str, Any]] = []
    senders: list[DirectSender | None] = []
    for request in requests:
        row = request.row(now)
        # Reserved before the insert awaits, so that no claim can take the device meanwhile.
        sender = sender_for(request) if sender_for is not None else None
        if sender is not None:
            row |= {"state": CommandState.SENT, "attempts": 1, "sent_at": now}
        rows.append(row)
        senders.append(sender)
    ids = (await connection.execute(_INSERT, rows)).scalars().all()
    return [Written(command_id, row, sender) for command_id, row, sender in zip(ids, rows, senders, strict=True)]


class Handover:
    """Commands written in one transaction, handed on when it has committed: to the direct sender that
    reserved their device, or (the rest, queued) to the dispatchers woken by ``notify``. Used as an async
    context manager around the transaction; leaving it without ``committed()`` releases the reservations."""

    def __init__(self, queue: CommandQueue) -> None:
        self.queue = queue
        self._reserved: list[tuple[DirectSender, str]] = []
        self._direct: list[tuple[DirectSender, Outgoing]] = []
        self._queued = 0
        self._committed = False

    async def __aenter__(self) -> Handover:
        return self

    async def add(self, connection: AsyncConnection, requests: Sequence[CommandRequest], now: datetime) -> None:
        """Write ``requests`` in the caller's transaction (see ``write_commands``), reserving the devices a
        direct sender can take at once."""

        def sender_for(request: CommandRequest) -> DirectSender | None:
            sender = self.queue.direct_sender(request.device, now, request.deadline)
            if sender is not None:
                self._reserved.append((sender, request.device))
            return sender

        for written in await write_commands(connection, requests, now, sender_for):
            if written.sender is None:
                self._queued += 1
                continue
            row = written.row
            command = Outgoing(written.id, row["device"], row["command"], row["action"], row["arguments"],
                               row["correlation_id"])  # fmt: skip
            self._direct.append((written.sender, command))

    def committed(self) -> None:
        self._committed = True

    async def __aexit__(self, *_exc: object) -> None:
        if not self._committed:
            for sender, device in self._reserved:
                sender.release(device)
            return
        for sender, command in self._direct:
            sender.deliver(command)
        if self._queued:
            self.queue.notify()
