"""A link to a bus of meters that speak a framed master/slave protocol (DL/T 645, CJ/T 188) over a byte
pipe: a serial server or transparent gateway (``rtu_over_tcp``), a serial port of this machine
(``rtu_serial``), or a DTU that dialled in (``dial_in``, through the bus's ``DialInLine``).

Every request goes through here, one at a time. It goes out after the wake-up bytes; the link then
reads until a frame that *answers it* arrives (the protocol says which: the meter asked, the function
asked) or the gateway's timeout passes. Anything else on the line — noise, a DTU's heartbeat, a stray or
late frame from another meter — is counted and skipped, never taken for the answer. After a timeout the
connection is dropped, so a late reply cannot answer the next request; on a dial-in line the session is
dropped instead and the DTU stays connected. Reconnects back off with jitter, like the Modbus link's; a
dial-in line has nothing to reconnect to, so a request while its DTU is away fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import termios
import time
from typing import Generic, Protocol, TypeVar

from collectors.dial_in.line import DialInLine
from collectors.link_errors import DeviceTimeout, LinkDown
from collectors.serial_streams import SerialStreams, open_serial
from houqin.backoff import Backoff
from houqin.inventory.model import Gateway

log = logging.getLogger(__name__)

READ_CHUNK = 256
F = TypeVar("F", bound="MeterFrame")


class MeterFrame(Protocol):
    """A request or reply of a meter protocol: to (or from) a meter address, written with wake-up bytes."""

    @property
    def address(self) -> str: ...

    def encode(self, wake: int) -> bytes: ...


class FrameSource(Protocol[F]):
    """Frames out of a byte stream, counting what was not one."""

    garbage: int
    bad_frames: int

    def feed(self, data: bytes) -> list[F]: ...

    def discard(self) -> None: ...


class FramedLink(Generic[F]):
    """The connection, the turn-taking and the timeouts of one bus; a protocol's link says how its
    frames are written (``_encode``), read (``_frames``) and matched to a request (``_answers``)."""

    protocol = "meter"
    default_wake = 4  # FE bytes before each request

    def __init__(
        self,
        gateway: Gateway,
        wake: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        line: DialInLine | None = None,
    ) -> None:
        if gateway.type == "modbus_tcp":
            raise ValueError(f"gateway {gateway.id}: {self.protocol} runs over a serial port or a transparent gateway")
        if (gateway.type == "dial_in") != (line is not None):
            raise ValueError(f"gateway {gateway.id}: a dial_in gateway is reached through its line, only it")
        self.gateway = gateway
        self.line = line
        self.wake = self.default_wake if wake is None else wake
        self.backoff = Backoff(backoff_base, backoff_max, jitter=0.5)
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._serial: SerialStreams | None = None  # a local serial port: its pieces to close
        self._frames = self._new_frames()
        self._down_until = 0.0
        self._failures = 0
        self._last_request_end = 0.0
        self.requests = 0
        self.timeouts = 0
        self.reconnects = 0
        self.stray_frames = 0  # whole frames that answered nothing asked (another meter's, a late one)

    @property
    def name(self) -> str:
        return self.gateway.id

    @property
    def garbage_bytes(self) -> int:
        return self._frames.garbage

    @property
    def bad_frames(self) -> int:
        return self._frames.bad_frames

    def _new_frames(self) -> FrameSource[F]:
        raise NotImplementedError

    def _encode(self, request: F) -> bytes:
        return request.encode(self.wake)

    def _answers(self, frame: F, request: F) -> bool:
        raise NotImplementedError

    def _describe(self, request: F) -> str:
        return f"meter {request.address}"

    # -- the wire ----------------------------------------------------------------------------------------

    async def exchange(self, request: F, expect_reply: bool = True) -> F:
        async with self._lock:
            writer = await self._connected()
            gap = self.gateway.inter_request_delay - (time.monotonic() - self._last_request_end)
            if gap > 0:
                await asyncio.sleep(gap)
            self.requests += 1
            try:
                writer.write(self._encode(request))
                await writer.drain()
                if not expect_reply:
                    return request
                # The wait is bounded by one timer that fails the reader: no task (as wait_for makes) and no
                # cancellation to undo (as asyncio.timeout does); the reader is dropped after a timeout anyway.
                assert self._reader is not None
                timer = asyncio.get_running_loop().call_later(self.gateway.timeout, self._reader.set_exception,
                                                              TimeoutError())  # fmt: skip
                try:
                    return await self._reply_to(request)
                finally:
                    timer.cancel()
            except TimeoutError:
                self.timeouts += 1
                self._drop()
                raise DeviceTimeout(f"{self._describe(request)} on {self.gateway.id}: no answer within "
                                    f"{self.gateway.timeout:g} s") from None  # fmt: skip
            except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
                self._drop()
                raise LinkDown(f"{self.gateway.id}: connection lost: {exc}") from None
            finally:
                self._last_request_end = time.monotonic()

    async def _reply_to(self, request: F) -> F:
        assert self._reader is not None
        while True:
            chunk = await self._reader.read(READ_CHUNK)
            if not chunk:
                raise ConnectionError("the gateway closed the connection")
            for frame in self._frames.feed(chunk):
                if self._answers(frame, request):
                    return frame
                self.stray_frames += 1

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self.line is not None:
            self._reader, self._writer = self.line.open()  # LinkDown while the DTU is away
            self._frames.discard()
            return self._writer
        now = time.monotonic()
        if now < self._down_until:
            raise LinkDown(f"{self.gateway.id}: unreachable, next attempt in {self._down_until - now:.1f} s")
        self.reconnects += 1
        try:
            reader, writer = await asyncio.wait_for(self._open(), self.gateway.timeout + 1)
        except (TimeoutError, OSError, ValueError, termios.error) as exc:  # pyserial: ValueError, termios too
            self._failures += 1
            delay = self.backoff.delay(self._failures)
            self._down_until = time.monotonic() + delay
            level = logging.ERROR if self._failures == 1 else logging.DEBUG
            log.log(level, "%s: cannot connect (%s), retrying in %.1f s", self.gateway.id, exc, delay)
            raise LinkDown(f"{self.gateway.id}: cannot connect") from None
        self._reader, self._writer = reader, writer
        if self._failures:
            log.info("%s: connected again after %d failed attempts", self.gateway.id, self._failures)
        self._failures = 0
        self._frames.discard()  # half a frame from the last connection belongs to nothing now
        return writer

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        gateway = self.gateway
        if gateway.type != "rtu_serial":
            return await asyncio.open_connection(gateway.host, gateway.port)
        self._serial = await open_serial(gateway.device or "", gateway.baudrate, gateway.bytesize, gateway.parity,
                                         gateway.stopbits)  # fmt: skip
        return self._serial.reader, self._serial.writer

    def _drop(self) -> None:
        if self.line is not None:
            self.line.release(self._reader)  # the DTU stays connected: only this session ends
        elif self._serial is not None:
            self._serial.close()
            self._serial = None
        elif self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def close(self) -> None:
        writer = None if self._serial is not None or self.line is not None else self._writer  # nothing to wait for
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
