"""One DTU's line: the connection its DTU dialled in on, as the bus links see it.

A DTU (a 4G or Ethernet data terminal on an RS-485 bus) connects to houqin, sends its registration packet,
and from then on forwards bytes both ways between the TCP connection and the bus; now and then it sends a
heartbeat. The listener identifies the DTU and hands the connection to its line; the line reads it for as
long as it lives, drops heartbeats, and feeds everything else to the link that is talking to the bus. The
link opens a *session* (a reader fed from that moment on) and, after a timeout, releases it instead of
hanging up: a DTU that is hung up on has to dial again, which takes seconds to minutes, so bytes that
arrive late are dropped by the line until the link opens its next session.

A DTU that dials in again (its old connection dead but not yet noticed, or a second DTU claiming the same
id) replaces the connection: the newest one is the live one. The line tells whoever listens (the bus
poller) when its DTU is back, so the bus is polled at once rather than at the next breaker probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from collectors.link_errors import LinkDown
from houqin.inventory.model import Gateway

log = logging.getLogger(__name__)

READ_CHUNK = 4096
FLAPPING_WINDOW = 60.0
FLAPPING_REPLACEMENTS = 3  # connections replaced within the window that say "two DTUs with one id"
SESSION_LIMIT = 64 * 1024  # a session's unread bytes: far beyond any reply, so only a babbling line reaches it


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: str
    since: float = field(default_factory=time.monotonic)
    last_heard: float = field(default_factory=time.monotonic)
    session: asyncio.StreamReader | None = None
    replaced: bool = False


class DialInLine:
    """The live connection of one dial-in gateway's DTU, shared by the link(s) of that bus."""

    def __init__(self, gateway: Gateway) -> None:
        if gateway.type != "dial_in":
            raise ValueError(f"gateway {gateway.id} is a {gateway.type} gateway, not dial_in")
        self.gateway = gateway
        self.registration = gateway.registration_bytes
        self.heartbeat = gateway.heartbeat_bytes
        self._connection: _Connection | None = None
        self._on_connect: list[Callable[[], None]] = []
        self._last_replace_warning = -float("inf")
        self._replaced_at: deque[float] = deque()
        self._hung_up = False  # houqin is stopping: a connection that ends now is not news
        self.connects = 0
        self.replacements = 0
        self.heartbeats = 0
        self.unsolicited_bytes = 0  # bytes no session asked for (late replies, chatter while idle)
        self.disconnected_at: float | None = time.monotonic()  # offline since start until the DTU dials in

    @property
    def name(self) -> str:
        return self.gateway.id

    @property
    def connected(self) -> bool:
        return self._connection is not None

    @property
    def peer(self) -> str | None:
        return self._connection.peer if self._connection else None

    def on_connect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` each time the DTU dials in (a first time or again)."""
        self._on_connect.append(callback)

    # -- the links' side --------------------------------------------------------------------------------

    def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A session on the live connection: a reader fed with what the DTU sends from now on (heartbeats
        removed), and the connection's writer. Raises ``LinkDown`` when no DTU is connected."""
        connection = self._connection
        if connection is None:
            raise LinkDown(self.describe_absence())
        if connection.session is not None:
            connection.session.feed_eof()
        connection.session = asyncio.StreamReader(limit=SESSION_LIMIT)
        return connection.session, connection.writer

    def release(self, session: asyncio.StreamReader | None) -> None:
        """The link is done with ``session``: what arrives from now on is nobody's until the next ``open``."""
        connection = self._connection
        if connection is not None and session is not None and connection.session is session:
            connection.session = None

    def describe_absence(self) -> str:
        if self.disconnected_at is None:
            return f"{self.gateway.id}: DTU not connected"
        away = time.monotonic() - self.disconnected_at
        state = "has not dialled in" if not self.connects else "disconnected"
        return f"{self.gateway.id}: DTU {state} ({away:.0f} s)"

    # -- the listener's side ----------------------------------------------------------------------------

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes, peer: str) -> None:
        """Carry the identified connection until it ends (or a newer one replaces it); ``first`` is what
        came after the registration packet."""
        connection = _Connection(reader, writer, peer)
        old = self._connection
        if old is not None:
            old.replaced = True
            self.replacements += 1
            self._close(old)
            self._say_replaced(old, peer)
        self._connection = connection
        self.connects += 1
        self.disconnected_at = None
        log.info("%s: DTU dialled in from %s", self.gateway.id, peer)
        for callback in self._on_connect:
            callback()
        try:
            if first:
                self._deliver(connection, first)
            await self._pump(connection)
        finally:
            self._close(connection)
            if self._connection is connection:
                self._connection = None
                self.disconnected_at = time.monotonic()
            if not connection.replaced and not self._hung_up:
                log.warning("%s: DTU at %s disconnected; its devices are unreachable until it dials in again",
                            self.gateway.id, peer)  # fmt: skip

    async def _pump(self, connection: _Connection) -> None:
        idle = self.gateway.idle_timeout
        while not connection.replaced:
            try:
                async with asyncio.timeout(idle):
                    chunk = await connection.reader.read(READ_CHUNK)
            except TimeoutError:
                log.warning("%s: DTU at %s silent for %g s (no data, no heartbeat): closing the connection",
                            self.gateway.id, connection.peer, idle)  # fmt: skip
                return
            except (ConnectionError, OSError):
                return
            if not chunk:
                return
            self._deliver(connection, chunk)

    def _deliver(self, connection: _Connection, chunk: bytes) -> None:
        connection.last_heard = time.monotonic()
        chunk = self._without_heartbeats(chunk)
        if not chunk:
            return
        if connection.session is None:
            self.unsolicited_bytes += len(chunk)
            return
        connection.session.feed_data(chunk)

    def _without_heartbeats(self, chunk: bytes) -> bytes:
        """A chunk that is one heartbeat or several goes; a longer heartbeat pattern (two bytes or more)
        is also taken off the ends of a chunk. A one-byte pattern inside data cannot be told from the data,
        so it stays (a DL/T 645 reader skips a stray ``FE``; elsewhere the frame check catches it)."""
        beat = self.heartbeat
        if not beat:
            return chunk
        size = len(beat)
        if len(chunk) % size == 0 and chunk == beat * (len(chunk) // size):
            self.heartbeats += len(chunk) // size
            return b""
        if size >= 2:
            while chunk.startswith(beat):
                chunk = chunk[size:]
                self.heartbeats += 1
            while chunk.endswith(beat):
                chunk = chunk[:-size]
                self.heartbeats += 1
        return chunk

    def _say_replaced(self, old: _Connection, peer: str) -> None:
        # One DTU redialling after its 4G session died replaces its connection now and then. Two DTUs
        # configured with one id replace each other over and over, from addresses that say nothing (NAT):
        # the rate tells them apart. Said once a minute, with both addresses.
        now = time.monotonic()
        self._replaced_at.append(now)
        while self._replaced_at and now - self._replaced_at[0] > FLAPPING_WINDOW:
            self._replaced_at.popleft()
        if len(self._replaced_at) >= FLAPPING_REPLACEMENTS:
            if now - self._last_replace_warning >= FLAPPING_WINDOW:
                self._last_replace_warning = now
                log.warning("%s: DTU dialled in %d times within %.0f s, each replacing a connection (now %s, "
                            "before %s): two DTUs with one registration id? (or one that keeps losing its link)",
                            self.gateway.id, len(self._replaced_at), FLAPPING_WINDOW, peer, old.peer)  # fmt: skip
            return
        log.info("%s: DTU dialled in again from %s; the old connection from %s is closed",
                 self.gateway.id, peer, old.peer)  # fmt: skip

    def _close(self, connection: _Connection) -> None:
        if connection.session is not None:
            connection.session.feed_eof()
            connection.session = None
        with contextlib.suppress(OSError, RuntimeError):
            connection.writer.close()

    def hang_up(self) -> None:
        """Close the live connection (at stop)."""
        self._hung_up = True
        if self._connection is not None:
            self._connection.replaced = True
            self._close(self._connection)
