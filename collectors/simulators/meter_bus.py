"""A simulated RS-485 bus of meters behind a serial server on a real socket: requests are framed out of
the byte stream, answered by the meter addressed (or nobody), and at ``baud`` the server holds each
request and reply for its time on the wire (11 bits a byte, 8E1), one frame at a time. The protocol's
part (framing, who answers what) is the subclass's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

F = TypeVar("F", bound="Addressed")
M = TypeVar("M", bound="Meter")


class Addressed(Protocol):
    @property
    def address(self) -> str: ...


class Meter(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def offline(self) -> bool: ...


class Frames(Protocol[F]):
    def feed(self, data: bytes) -> list[F]: ...


class SimulatedMeterBus(Generic[F, M]):
    request_wake = 4  # the wake-up bytes before each request: on the wire too
    wildcard = ""  # the address "whoever is on the bus" answers (read-address of a lone meter)

    def __init__(self, meters: Sequence[M], baud: int = 0) -> None:
        self.meters = {meter.address: meter for meter in meters}
        self.baud = baud
        self.port = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._line = asyncio.Lock()

    def _frames(self) -> Frames[F]:
        raise NotImplementedError

    def _answer(self, meter: M, request: F) -> F | None:
        raise NotImplementedError

    def _for_every_meter(self, request: F) -> bool:
        """A broadcast: every meter hears it, none answers."""
        return False

    def _replies(self, request: F) -> list[F]:
        if self._for_every_meter(request):
            for meter in self.meters.values():
                self._answer(meter, request)
            return []
        if request.address.upper() == self.wildcard:
            online = [meter for meter in self.meters.values() if not meter.offline]
            # Several meters answering the wildcard at once garble each other: nothing usable comes back.
            targets = online if len(online) == 1 else []
        else:
            addressed = self.meters.get(request.address)
            targets = [addressed] if addressed is not None and not addressed.offline else []
        replies = [self._answer(meter, request) for meter in targets]
        return [reply for reply in replies if reply is not None]

    def _encode(self, frame: F) -> bytes:
        raise NotImplementedError

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _wire(self, size: int) -> None:
        if self.baud:
            await asyncio.sleep(size * 11 / self.baud)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = self._frames()
        try:
            while chunk := await reader.read(512):
                for request in frames.feed(chunk):
                    async with self._line:
                        await self._wire(len(self._encode(request)) + self.request_wake)
                        self.requests += 1
                        for reply in self._replies(request):
                            wire = self._encode(reply)
                            await self._wire(len(wire))
                            writer.write(wire)
                            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # cancelled: the loop is shutting down (asyncio's stream server would log it as an error)
        finally:
            writer.close()
