"""Where DTUs dial in: one TCP listener per port, shared by every dial-in gateway on that port.

A connection is identified by the registration packet it sends first (heartbeats before it are skipped).
Until enough bytes have come to tell, the listener waits, up to the gateways' ``identify_timeout``. A
connection that names a known DTU is handed to that gateway's line for as long as it lives; one that
names no DTU of this port, or nothing within the time, is closed and logged (once a minute per id, so a
misconfigured DTU redialling every few seconds does not flood the log). The registration is all a DTU
proves of itself, as on every DTU platform: keep the port on the campus network or a VPN.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time

from collectors.dial_in.line import DialInLine

log = logging.getLogger(__name__)

IDENTIFY_CHUNK = 256
REFUSAL_LOG_SECONDS = 60.0


class ListenError(RuntimeError):
    """The port cannot be listened on (in use, not allowed): says which gateways wanted it."""


class DialInListener:
    """A component of ``houqin run``: the listening socket of one port and the connections being identified."""

    def __init__(self, lines: list[DialInLine]) -> None:
        if not lines:
            raise ValueError("a listener needs at least one dial-in gateway")
        self.host = lines[0].gateway.listen_host
        self.port = lines[0].gateway.port
        self.lines = {line.registration: line for line in lines}
        self.heartbeats = sorted({line.heartbeat for line in lines if line.heartbeat}, key=len, reverse=True)
        self.identify_timeout = max(line.gateway.identify_timeout for line in lines)
        self._longest = max(len(registration) for registration in self.lines)
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._refusals_said: dict[str, float] = {}
        self.refused = 0

    @property
    def name(self) -> str:
        return f"dial-in:{self.port}"

    @property
    def bound_port(self) -> int:
        """The port listened on (the configured one, or the one picked when it is 0)."""
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        except OSError as exc:
            gateways = ", ".join(line.gateway.id for line in self.lines.values())
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise ListenError(f"cannot listen on {self.host}:{self.port} for dial-in gateway(s) {gateways}: {why}"
                              ) from None  # fmt: skip
        log.info("listening on %s:%d for DTUs %s", self.host, self.bound_port,
                 ", ".join(line.gateway.id for line in self.lines.values()))  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        if self._server is None:
            await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and hang up every DTU (again: harmless)."""
        if self._server is not None:
            self._server.close()
        for line in self.lines.values():
            line.hang_up()
        # Hung up, each connection's task ends by itself (a cancelled one would be logged by asyncio's
        # stream server as an error).
        for writer in self._connections.values():
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._identify_and_serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the loop is shutting down: the stream server would log a cancelled connection as an error
        finally:
            self._connections.pop(task, None)
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    async def _identify_and_serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        _keepalive(writer)
        received = b""
        try:
            async with asyncio.timeout(self.identify_timeout):
                while True:
                    received = self._skip_heartbeats(received)
                    line, rest = self._identify(received)
                    if line is not None:
                        break
                    if rest is None:  # no registration of this port starts like this
                        self._refuse(peer, received, "unknown registration")
                        return
                    chunk = await reader.read(IDENTIFY_CHUNK)
                    if not chunk:
                        return  # hung up before saying who it is: nothing to serve
                    received += chunk
        except TimeoutError:
            self._refuse(peer, received, f"nothing identifiable within {self.identify_timeout:g} s")
            return
        except (ConnectionError, OSError):
            return
        await line.serve(reader, writer, rest or b"", peer)

    def _skip_heartbeats(self, received: bytes) -> bytes:
        changed = True
        while changed:
            changed = False
            for beat in self.heartbeats:
                if received.startswith(beat) and len(received) >= len(beat):
                    received = received[len(beat) :]
                    changed = True
        return received

    def _identify(self, received: bytes) -> tuple[DialInLine | None, bytes | None]:
        """``(line, what followed the registration)`` once known; ``(None, b"")`` to wait for more;
        ``(None, None)`` when no registration of this port can be what came. The inventory check keeps
        one port's registrations from starting one another, so the first full match is the only one."""
        for registration, line in self.lines.items():
            if received.startswith(registration):
                return line, received[len(registration) :]
        if len(received) < self._longest and any(r.startswith(received) for r in self.lines):
            return None, b""
        return None, None

    def _refuse(self, peer: str, received: bytes, why: str) -> None:
        self.refused += 1
        said = _shown(received[: self._longest + 8])
        now = time.monotonic()
        if now - self._refusals_said.get(said, -REFUSAL_LOG_SECONDS) >= REFUSAL_LOG_SECONDS:
            self._refusals_said[said] = now
            if len(self._refusals_said) > 1000:  # a scan of random ids must not grow this for ever
                self._refusals_said = {said: now}
            log.warning("port %d: refused a connection from %s: %s (it sent %s; %d refused so far)",
                        self.port, peer, why, said or "nothing", self.refused)  # fmt: skip


def _shown(data: bytes) -> str:
    """Bytes as a person reads them: printable ASCII as text, anything else as hex."""
    if data and all(32 <= byte < 127 for byte in data):
        return repr(data.decode("ascii"))
    return data.hex(" ").upper()


def _keepalive(writer: asyncio.StreamWriter) -> None:
    # A 4G session can vanish without a FIN; TCP keepalive (and idle_timeout) notice it in the end.
    import socket

    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
