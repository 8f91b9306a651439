"""The in-process MQTT broker of the embedded default (amqtt), for a campus without Mosquitto or EMQX.

It binds 127.0.0.1 only and allows anonymous clients: it is for trying houqin on one machine. A campus
runs its own broker (Mosquitto with a password file and ACLs) and points ``HOUQIN_MQTT_URL`` at it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class EmbeddedBroker:
    name = "mqtt-broker"

    def __init__(self, port: int = 0) -> None:
        self._requested_port = port
        self.port = port
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self._requested_port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker = Broker(config)
        await self._broker.start()
        server: Any = self._broker._servers["default"].instance  # amqtt keeps the asyncio.Server here
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("embedded MQTT broker on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    async def run(self, stop: asyncio.Event) -> None:
        await stop.wait()
