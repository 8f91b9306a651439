"""Simulated MQTT devices: water meters (flow over the day, a totalizer, leaks), lighting controllers that
echo commands as state, and broadcast controllers that play programmes. They publish their state on
their own topics at their poll interval and whenever a command changes it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiomqtt
import orjson

from collectors.simulators.physics import starting_counter, water_flow
from houqin.inventory import Inventory
from houqin.inventory.model import Device, command_topic

log = logging.getLogger(__name__)


class SimulatedMqttDevices:
    name = "mqtt-simulators"

    def __init__(self, inventory: Inventory, url: str, timezone: ZoneInfo, faults: dict[str, set[str]]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.inventory = inventory
        self.tz = timezone
        self.faults = faults
        self.devices = [device for device in inventory.mqtt_devices() if device.topic]
        self.state: dict[str, dict[str, Any]] = {device.id: self._initial(device) for device in self.devices}
        self._last = {device.id: time.time() for device in self.devices}
        self._commands: dict[str, tuple[Device, str]] = {}
        self._plays_until: dict[str, float] = {}  # broadcast device -> when its programme ends
        for device in self.devices:
            for name, command in inventory.model_of(device).commands.items():
                if command.topic and device.topic:
                    self._commands[command_topic(device, command)] = (device, name)
        self.published = 0
        self.subscribed = asyncio.Event()  # set while connected with the command topics subscribed

    def _initial(self, device: Device) -> dict[str, Any]:
        kind = self.inventory.model_of(device).kind
        if kind == "water":
            return {"flow": 0.0, "total": starting_counter(device.id, "water", False, "mqtt")}
        if kind == "lighting":
            return {"state": {"on": False, "level": 0}, "current": 0.0, "command_id": ""}
        return {"playing": False, "programme": None, "volume": 70, "command_id": ""}

    def payload(self, device: Device, now: float | None = None) -> bytes:
        """The device's state message now (advancing its totalizer)."""
        now = time.time() if now is None else now
        faults = self.faults.get(device.id, set())
        if "garbage_payload" in faults:
            return b"\x00\xffgarbage{"
        state = self.state[device.id]
        kind = self.inventory.model_of(device).kind
        if kind == "water":
            flow = water_flow(datetime.fromtimestamp(now, self.tz).hour, faults)
            state["total"] += flow * (now - self._last[device.id]) / 60 / 1000  # L/min over seconds -> m³
            state["flow"] = round(flow, 3)
        elif kind == "lighting":
            on = bool(state["state"]["on"])
            level = int(state["state"].get("level", 100))
            state["current"] = round(1.2 * level / 100, 3) if on and "lamp_failure" not in faults else 0.0
        elif kind == "broadcast":
            ends = self._plays_until.get(device.id)
            if ends is not None and now >= ends:  # the programme has played its duration
                del self._plays_until[device.id]
                state["playing"], state["programme"] = False, None
        self._last[device.id] = now
        return orjson.dumps(state)

    def command(self, device: Device, name: str, payload: bytes) -> None:
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("%s: command %s with unreadable payload %r ignored", device.id, name, payload[:40])
            return
        if not isinstance(body, dict):
            log.warning("%s: command %s with a payload that is not an object ignored", device.id, name)
            return
        state = self.state[device.id]
        if "on" in body:
            on = bool(body["on"])
            state["state"]["on"] = on
            state["state"]["level"] = int(body.get("level", 100)) if on else 0
        if "programme" in body:
            # A new programme replaces the one playing, which does not resume afterwards.
            state["programme"] = body["programme"]
            state["playing"] = body["programme"] is not None
            duration = body.get("duration_s")
            if state["playing"] and isinstance(duration, int | float) and duration > 0:
                self._plays_until[device.id] = time.time() + duration
            else:
                self._plays_until.pop(device.id, None)
        if "command_id" in body:
            state["command_id"] = str(body["command_id"])

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                client = aiomqtt.Client(self.host, self.port, identifier="houqin-simulators")
                client.pending_calls_threshold = max(10, len(self.devices))  # echoes of a campus-wide bell
                async with client:
                    if self._commands:
                        await client.subscribe([(topic, 1) for topic in self._commands])
                    self.subscribed.set()
                    tasks = [asyncio.create_task(self._report(client, device, stop)) for device in self.devices]
                    tasks.append(asyncio.create_task(self._listen(client)))
                    stopping = asyncio.create_task(stop.wait())
                    await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
                    for task in [*tasks, stopping]:
                        task.cancel()
                    results = await asyncio.gather(*tasks, return_exceptions=True)
                    for result in results:
                        if isinstance(result, aiomqtt.MqttError):
                            raise result
            except aiomqtt.MqttError as error:
                self.subscribed.clear()
                log.debug("simulated MQTT devices: %s; reconnecting", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _report(self, client: aiomqtt.Client, device: Device, stop: asyncio.Event) -> None:
        await asyncio.sleep(random.uniform(0, device.poll_interval))  # noqa: S311 - spread the devices
        while not stop.is_set():
            await self._publish(client, device)
            await asyncio.sleep(device.poll_interval)

    async def _publish(self, client: aiomqtt.Client, device: Device) -> None:
        if "offline" in self.faults.get(device.id, set()) or device.topic is None:
            return
        await client.publish(device.topic, self.payload(device), qos=1)
        self.published += 1

    async def _listen(self, client: aiomqtt.Client) -> None:
        echoes: set[asyncio.Task[None]] = set()
        async for message in client.messages:
            target = self._commands.get(message.topic.value)
            if target is None:
                continue
            device, name = target
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self.command(device, name, payload)
            # The state echo (how houqin confirms the command) goes out on its own: like a real controller,
            # the next command is taken while the broker acknowledges the echo.
            echo = asyncio.create_task(self._publish(client, device))
            echoes.add(echo)
            echo.add_done_callback(echoes.discard)
