"""The MQTT link: receives the telemetry of every MQTT device in the inventory and publishes commands.

QoS 1 with a persistent session (a fixed client id, no clean session), so what devices send while
houqin is briefly disconnected is delivered when it is back. Reconnecting is this loop's job (aiomqtt's
client is a reusable async context manager), with exponential backoff and jitter. With a shared group,
several houqin instances split the devices' messages between them (``$share/<group>/<topic>``).
Payloads that cannot be read are counted and logged once per device per minute; they never stop the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
import orjson
from prometheus_client import Counter

from collectors.mqtt_flow import FlowControlledClient
from houqin.backoff import Backoff
from houqin.inventory import Inventory
from houqin.inventory.model import Device, PayloadMap, command_topic
from houqin.readings import GarbageLog, Publish, Reading, Settled

log = logging.getLogger(__name__)

MESSAGES = Counter("houqin_mqtt_messages_total", "MQTT messages received", ["result"])

FieldValue = float | bool | str


class PayloadError(ValueError):
    """A device payload that does not fit its model's payload map."""


class PayloadDecoder:
    """A model's payload map prepared once: every message of every device of the model goes through it."""

    def __init__(self, payload_map: PayloadMap) -> None:
        self.plain = payload_map.format == "plain"
        self.fields = [
            (name, tuple(spec.path.split(".")) if spec.path else (), spec.type, spec.scale, spec.offset)
            for name, spec in payload_map.fields.items()
        ]

    def decode(self, payload: bytes) -> dict[str, FieldValue]:
        """Fields of a device payload; raises ``PayloadError`` when none can be read."""
        if self.plain:
            name, _, _, scale, offset = self.fields[0]
            try:
                number = float(payload.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raise PayloadError(f"not a number: {payload[:40]!r}") from None
            if not math.isfinite(number):
                raise PayloadError(f"not a finite number: {number}")
            return {name: number * scale + offset}
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise PayloadError(f"not JSON: {payload[:40]!r}") from None
        fields: dict[str, FieldValue] = {}
        problems: list[str] = []
        for name, keys, kind, scale, offset in self.fields:
            value: Any = document
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue  # a device may leave a field out of one message
            value_type = type(value)
            if kind == "number" and (value_type is float or value_type is int) and math.isfinite(value):
                fields[name] = value * scale + offset if scale != 1.0 or offset else float(value)
            elif kind == "bool" and (value_type is bool or value in (0, 1)):
                fields[name] = bool(value)
            elif kind == "string" and value_type is str:
                fields[name] = value
            else:
                problems.append(f"{name}={value!r} is not a {kind}")
        if not fields:
            raise PayloadError("no field of the payload map found" + (f" ({', '.join(problems)})" if problems else ""))
        return fields


def decode_payload(payload: bytes, payload_map: PayloadMap) -> dict[str, FieldValue]:
    """Fields of a device payload; raises ``PayloadError`` when none can be read."""
    return PayloadDecoder(payload_map).decode(payload)


PUBLISH_TIMEOUT = 5.0
# QoS 1 publishes awaiting the broker's acknowledgement at once: above the largest campus-wide bell (the
# window is not what paces a burst), a bound on what piles up while a broker stalls.
INFLIGHT = 1000


class MqttLink:
    """One connection to the broker for every MQTT device; a component of ``houqin run``."""

    name = "mqtt"

    def __init__(
        self,
        url: str,
        inventory: Inventory,
        publish: Publish,
        client_id: str = "houqin",
        shared_group: str | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        settled: Settled | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
            raise ValueError("MQTT URL must look like mqtt://user:password@host:1883")
        self.host = parts.hostname
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.username, self.password = parts.username, parts.password
        self.tls = parts.scheme == "mqtts"
        self.inventory = inventory
        self.publish = publish
        self.client_id = client_id
        self.shared_group = shared_group
        self.backoff = Backoff(backoff_base, backoff_max, jitter=0.5)
        self.devices = {device.topic: device for device in inventory.mqtt_devices() if device.enabled and device.topic}
        self._tags = {device.id: inventory.device_tags(device) for device in self.devices.values()}
        decoders: dict[str, PayloadDecoder] = {}
        self._routes: dict[str, tuple[Device, PayloadDecoder, dict[str, str]]] = {}
        for topic, device in self.devices.items():
            payload_map = inventory.model_of(device).payload
            assert payload_map is not None  # checked when the inventory was loaded
            decoder = decoders.setdefault(device.model, PayloadDecoder(payload_map))
            self._routes[topic] = (device, decoder, self._tags[device.id])
        self._client: FlowControlledClient | None = None
        self.connected = asyncio.Event()
        self.received = 0
        self.garbage = GarbageLog(log)
        # Labelled metric children looked up once: every message passes here.
        self._ok = MESSAGES.labels("ok")
        self._garbage_count = MESSAGES.labels("garbage")
        self._unknown_count = MESSAGES.labels("unknown_topic")
        self.unknown = 0
        self.connections = 0
        self._window = asyncio.Semaphore(INFLIGHT)
        self._sending = 0
        self._drained = asyncio.Event()  # set while no publish awaits its acknowledgement
        self._drained.set()
        # With ``settled``, a QoS 1 message is acknowledged to the broker only once its reading is on disk:
        # one killed before that is delivered again (to this session when it is back, or to another member
        # of the shared group), so a crash loses none; one delivered twice is stored twice, at its two times.
        self.settled = settled

    def _new_client(self) -> FlowControlledClient:
        # Bounded: while the pipeline is blocked, what the broker sends waits at the broker (see mqtt_flow).
        client = FlowControlledClient(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            clean_session=False,  # persistent session: QoS 1 messages wait for us while we are away
            keepalive=30,
            # The campus's bells go out together: paho's default of 20 unacknowledged QoS 1 messages sends
            # 500 of them in 25 round trips, and any window of paho's holds each publish back until older
            # ones are acknowledged (it also walks its pending messages on every acknowledgement). 0 lifts
            # it: ``send`` bounds what is in flight.
            max_inflight_messages=0,
            tls_params=aiomqtt.TLSParameters() if self.tls else None,
            timeout=10,
        )
        # aiomqtt logs a warning for every publish made while more than 10 await their acknowledgement: at
        # the 08:00 bell that was hundreds of lines (and a tenth of the time it took to send them).
        client.pending_calls_threshold = INFLIGHT + 10
        if self.settled is not None:
            # From the first message on (a persistent session's arrive as soon as it connects), paho must
            # not acknowledge a message as it hands it over.
            client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                async with self._new_client() as client:
                    self._client = client
                    # Messages are taken from the start: a persistent session's waiting messages arrive before
                    # the subscriptions are acknowledged, and reading pauses while nobody takes them.
                    receiving = asyncio.create_task(self._receive(client))
                    try:
                        await self._subscribe(client)
                    except BaseException:
                        receiving.cancel()
                        await asyncio.gather(receiving, return_exceptions=True)
                        raise
                    self.connections += 1
                    if failures:
                        log.info("MQTT broker %s:%d reached again", self.host, self.port)
                    failures = 0
                    self.connected.set()
                    stopping = asyncio.create_task(stop.wait())
                    done, _ = await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    stopping.cancel()
                    if receiving in done:
                        receiving.result()  # raises the MqttError that ended it
                    else:
                        # Commands going out as houqin stops get their acknowledgement (or their timeout)
                        # before the connection closes, instead of waiting on a closed one.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._drained.wait(), PUBLISH_TIMEOUT)
                        receiving.cancel()
                        await asyncio.gather(receiving, return_exceptions=True)
            except aiomqtt.MqttError as error:
                failures += 1
                delay = self.backoff.delay(failures)
                level = logging.ERROR if failures == 1 else logging.DEBUG
                log.log(level, "MQTT broker %s:%d: %s; retrying in %.1f s", self.host, self.port, error, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            finally:
                self._client = None
                self.connected.clear()

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        topics = sorted(self.devices)
        prefix = f"$share/{self.shared_group}/" if self.shared_group else ""
        # Subscribe in batches: brokers bound the topics of one SUBSCRIBE packet.
        for start in range(0, len(topics), 100):
            await client.subscribe([(prefix + topic, 1) for topic in topics[start : start + 100]])

    async def _receive(self, client: aiomqtt.Client) -> None:
        if self.settled is None:
            async for message in client.messages:
                await self.handle(message.topic.value, _payload(message))
            return
        # The acknowledgements go out in arrival order (as MQTT asks), a group at a time, each group once its
        # readings settled.
        unacked: list[aiomqtt.Message] = []
        waiting = asyncio.Event()
        acking = asyncio.create_task(self._acknowledge(client, unacked, waiting))
        try:
            async for message in client.messages:
                await self.handle(message.topic.value, _payload(message))
                if message.qos > 0:
                    unacked.append(message)
                    waiting.set()
                if acking.done():
                    acking.result()
        finally:
            acking.cancel()
            await asyncio.gather(acking, return_exceptions=True)

    async def _acknowledge(
        self, client: aiomqtt.Client, unacked: list[aiomqtt.Message], waiting: asyncio.Event
    ) -> None:
        assert self.settled is not None
        while True:
            await waiting.wait()
            waiting.clear()
            group = unacked[:]
            del unacked[:]
            if not await self.settled():
                return  # stopping: unacknowledged, the broker delivers them again
            for message in group:
                client._client.ack(message.mid, message.qos)

    async def handle(self, topic: str, payload: bytes) -> Reading | None:
        """Turn one message into a reading and publish it; garbage is counted, never raised."""
        self.received += 1
        route = self._routes.get(topic)
        if route is None:
            self.unknown += 1
            self._unknown_count.inc()
            return None
        device, decoder, tags = route
        try:
            fields = decoder.decode(payload)
        except PayloadError as error:
            self._garbage_count.inc()
            self.garbage.report(device.id, str(error))
            return None
        self._ok.inc()
        reading = Reading(device.id, datetime.now(UTC), fields, tags)
        await self.publish(reading)
        return reading

    async def send(
        self,
        device: Device,
        command_name: str,
        action: str,
        arguments: Mapping[str, object] | None = None,
        correlation: str = "",
    ) -> None:
        """Publish a command (QoS 1). Raises ``aiomqtt.MqttError`` when the broker is not connected."""
        command = self.inventory.model_of(device).commands[command_name]
        payload = command.render(action, arguments or {}, correlation)
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected to the broker")
        self._sending += 1
        self._drained.clear()
        try:
            async with self._window:
                # A QoS 1 publish waits for the broker's PUBACK, which never comes if the connection drops.
                async with asyncio.timeout(PUBLISH_TIMEOUT):
                    await client.publish(command_topic(device, command), str(payload).encode(), qos=1)
        except TimeoutError:
            raise aiomqtt.MqttError(f"the broker did not acknowledge within {PUBLISH_TIMEOUT:.0f} s") from None
        finally:
            self._sending -= 1
            if not self._sending:
                self._drained.set()


def _payload(message: aiomqtt.Message) -> bytes:
    payload = message.payload
    return bytes(payload) if isinstance(payload, bytes | bytearray) else str(payload).encode()
