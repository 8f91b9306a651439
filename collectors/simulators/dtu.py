"""A simulated DTU: it dials houqin, sends its registration packet, sends a heartbeat now and then, and
carries bytes both ways between houqin and its bus (a simulated serial server on 127.0.0.1), as a 4G or
Ethernet DTU does between the platform and its RS-485 port. When either side hangs up it dials again.

Run on its own (a DTU houqin did not start, for tests and for trying a site's dial-in settings)::

    python -m collectors.simulators.dtu --houqin 127.0.0.1:15028 --bus 127.0.0.1:15027 --registration DTU-1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

log = logging.getLogger(__name__)


class SimulatedDtu:
    def __init__(
        self,
        registration: bytes,
        houqin: tuple[str, int],
        bus: tuple[str, int],
        heartbeat: bytes | None = None,
        heartbeat_every: float = 60.0,
        redial: float = 1.0,
        heartbeat_in_reply_every: int = 0,
    ) -> None:
        self.registration = registration
        self.houqin = houqin
        self.bus = bus
        self.heartbeat = heartbeat
        self.heartbeat_every = heartbeat_every
        self.redial = redial
        # Every Nth reply from the bus is sent with a heartbeat inside it (a DTU whose heartbeat timer fires
        # while it forwards a reply): houqin must count the broken frame and go on.
        self.heartbeat_in_reply_every = heartbeat_in_reply_every
        self.dials = 0
        self.replies = 0
        self._task: asyncio.Task[None] | None = None
        self._hang_up: asyncio.Event = asyncio.Event()
        self._away: float | None = None  # the next pause before dialling, when a drop says how long

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def drop(self, away: float | None = None) -> None:
        """Hang up now (a 4G session lost); the DTU dials again after ``away`` (default ``redial``) seconds."""
        self._away = away
        self._hang_up.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except (ConnectionError, OSError) as exc:
                log.debug("simulated DTU %r: %s", self.registration, exc)
            away, self._away = self._away, None
            await asyncio.sleep(self.redial if away is None else away)

    async def _session(self) -> None:
        bus_reader, bus_writer = await asyncio.open_connection(*self.bus)  # the serial side is always there
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.houqin)
        except OSError:
            bus_writer.close()
            raise
        self.dials += 1
        self._hang_up.clear()
        up_writer.write(self.registration)
        await up_writer.drain()
        tasks = [
            asyncio.create_task(self._carry(up_reader, bus_writer)),
            asyncio.create_task(self._carry_replies(bus_reader, up_writer)),
            asyncio.create_task(self._hang_up.wait()),
        ]
        if self.heartbeat:
            tasks.append(asyncio.create_task(self._beat(up_writer)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (up_writer, bus_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    writer.close()

    @staticmethod
    async def _carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(4096):
            writer.write(chunk)
            await writer.drain()

    async def _carry_replies(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(4096):
            self.replies += 1
            every = self.heartbeat_in_reply_every
            if every and self.heartbeat and self.replies % every == 0 and len(chunk) > 1:
                middle = len(chunk) // 2
                chunk = chunk[:middle] + self.heartbeat + chunk[middle:]
            writer.write(chunk)
            await writer.drain()

    async def _beat(self, writer: asyncio.StreamWriter) -> None:
        assert self.heartbeat is not None
        while True:
            await asyncio.sleep(self.heartbeat_every)
            writer.write(self.heartbeat)
            await writer.drain()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(description="A simulated DTU that dials in to houqin and bridges a bus.")
    parser.add_argument("--houqin", required=True, help="host:port houqin listens on for DTUs")
    parser.add_argument("--bus", required=True, help="host:port of the bus (a serial server)")
    parser.add_argument("--registration", required=True)
    parser.add_argument("--registration-hex", action="store_true", help="the registration is hex bytes")
    parser.add_argument("--heartbeat", help="heartbeat bytes as hex (e.g. FE)")
    parser.add_argument("--heartbeat-every", type=float, default=60.0)
    parser.add_argument("--redial", type=float, default=1.0)
    parser.add_argument("--heartbeat-in-reply-every", type=int, default=0)
    args = parser.parse_args()
    registration = bytes.fromhex(args.registration) if args.registration_hex else args.registration.encode()
    dtu = SimulatedDtu(
        registration,
        _address(args.houqin),
        _address(args.bus),
        bytes.fromhex(args.heartbeat) if args.heartbeat else None,
        args.heartbeat_every,
        args.redial,
        args.heartbeat_in_reply_every,
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await dtu.start()
        await stop.wait()
        await dtu.stop()

    logging.basicConfig(level=logging.INFO)
    asyncio.run(run())


if __name__ == "__main__":
    main()
