"""The API as a houqin component: uvicorn on a socket bound up front, stopped by the shared stop event."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)


class _QuietSignalsServer(uvicorn.Server):
    # houqin owns SIGINT/SIGTERM for the whole process and stops every component together.
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    name = "api"

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        # Bind now so that a port in use is a clear error at start, and port 0 gets a real port.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            # Listening at once: "houqin is up" is printed before uvicorn starts, and a client that connects
            # in between waits in the backlog instead of being refused.
            self.socket.listen(2048)
        except OSError as exc:
            self.socket.close()
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.host = host
        self.port = self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def run(self, stop: asyncio.Event) -> None:
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        server = _QuietSignalsServer(config)
        serving = asyncio.create_task(server.serve(sockets=[self.socket]))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        try:
            await serving
        finally:
            stopping.cancel()
            self.socket.close()
