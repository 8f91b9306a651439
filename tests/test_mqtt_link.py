"""The MQTT link against a real Mosquitto: readings, garbage, a broker restart, commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiomqtt
import orjson
import pytest

from collectors.mqtt_link import MqttLink, PayloadError, decode_payload
from houqin.inventory import Inventory
from houqin.inventory.model import PayloadMap
from houqin.readings import Reading
from tests.servers import Mosquitto, mosquitto_server

WATER = "campus/dorm-1/water/dorm1-water/state"


class Collected:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.changed = asyncio.Event()

    async def publish(self, reading: Reading) -> None:
        self.readings.append(reading)
        self.changed.set()

    async def wait_for(self, count: int, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while len(self.readings) < count:
                self.changed.clear()
                await self.changed.wait()


async def start_link(link: MqttLink) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    await asyncio.wait_for(link.connected.wait(), 10)
    return stop, task


@pytest.fixture
async def running_link(mosquitto: Mosquitto, demo_inventory: Inventory) -> AsyncIterator[tuple[MqttLink, Collected]]:
    collected = Collected()
    link = MqttLink(f"mqtt://127.0.0.1:{mosquitto.port}", demo_inventory, collected.publish, client_id="houqin-test")
    stop, task = await start_link(link)
    yield link, collected
    stop.set()
    await task


async def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_a_water_meter_message_becomes_a_reading(
    running_link: tuple[MqttLink, Collected], mosquitto: Mosquitto
) -> None:
    _, collected = running_link
    await publish(mosquitto.port, [(WATER, b'{"flow": 12.5, "total": 1034.25}')])
    await collected.wait_for(1)
    reading = collected.readings[0]
    assert reading.device == "dorm1-water"
    assert reading.fields == {"flow": 12.5, "total": 1034.25}
    assert reading.tags["kind"] == "water" and reading.tags["building"] == "dorm-1"


async def test_garbage_is_counted_and_good_messages_keep_flowing(
    running_link: tuple[MqttLink, Collected], mosquitto: Mosquitto
) -> None:
    link, collected = running_link
    garbage = [b"", b"not json", b"[1,2", b'{"flow": "fast"}', b'{"other": 1}', b"\xff\xfe"]
    messages = [(WATER, garbage[n % len(garbage)]) for n in range(10_000)]
    messages.insert(5_000, (WATER, b'{"flow": 1.0, "total": 2.0}'))
    messages.append((WATER, b'{"flow": 3.0, "total": 4.0}'))
    await publish(mosquitto.port, messages)
    await collected.wait_for(2, seconds=60)
    assert [r.fields["flow"] for r in collected.readings] == [1.0, 3.0]
    assert link.garbage.count == 10_000


async def test_messages_sent_while_the_broker_restarts_arrive(demo_inventory: Inventory) -> None:
    with mosquitto_server(persistence=True) as broker:
        collected = Collected()
        link = MqttLink(f"mqtt://127.0.0.1:{broker.port}", demo_inventory, collected.publish,
                        client_id="houqin-restart", backoff_base=0.2, backoff_max=1.0)  # fmt: skip
        stop, task = await start_link(link)
        try:
            await publish(broker.port, [(WATER, b'{"flow": 0.0}')])
            await collected.wait_for(1)
            broker.stop()
            await asyncio.sleep(1.0)
            assert not link.connected.is_set()
            broker.start()
            returned = asyncio.get_running_loop().time()
            # Published as soon as the broker is back, whether or not houqin has reconnected yet.
            await publish(broker.port, [(WATER, orjson.dumps({"flow": float(n)})) for n in range(1, 201)])
            await asyncio.wait_for(link.connected.wait(), 5)
            assert asyncio.get_running_loop().time() - returned < 5
            await collected.wait_for(201, seconds=15)
            assert sorted(r.fields["flow"] for r in collected.readings[1:]) == [float(n) for n in range(1, 201)]
            assert link.connections == 2
        finally:
            stop.set()
            await task


async def test_commands_go_to_the_device_command_topic(
    running_link: tuple[MqttLink, Collected], mosquitto: Mosquitto, demo_inventory: Inventory
) -> None:
    link, _ = running_link
    device = demo_inventory.devices["library-lights-2"]
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as watcher:
        await watcher.subscribe("campus/library/lighting/library-lights-2/#", qos=1)
        await link.send(device, "light", "dim", {"level": 35}, "c0ffee")
        async with asyncio.timeout(5):
            async for message in watcher.messages:
                assert message.topic.value == "campus/library/lighting/library-lights-2/set"
                # The arguments and the correlation id the device echoes back are filled into the payload.
                payload = orjson.loads(bytes(message.payload))  # type: ignore[arg-type]
                assert payload == {"on": True, "level": 35, "command_id": "c0ffee"}
                break


async def test_commands_going_out_as_the_link_stops_are_acknowledged(
    mosquitto: Mosquitto, demo_inventory: Inventory
) -> None:
    link = MqttLink(f"mqtt://127.0.0.1:{mosquitto.port}", demo_inventory, Collected().publish, client_id="houqin-stop")
    stop, task = await start_link(link)
    device = demo_inventory.devices["library-lights-2"]
    sending = [asyncio.create_task(link.send(device, "light", "on", None, f"c{n}")) for n in range(50)]
    await asyncio.sleep(0)  # published, not yet acknowledged
    stop.set()
    async with asyncio.timeout(2):  # a publish cut off by the closing connection waited 5 s, then failed
        await asyncio.gather(*sending)
        await task


def test_payload_maps() -> None:
    nested = PayloadMap.model_validate(
        {"fields": {"on": {"path": "state.on", "type": "bool"}, "amps": {"path": "i", "scale": 0.001}}}
    )
    assert decode_payload(b'{"state": {"on": true}, "i": 1500}', nested) == {"on": True, "amps": 1.5}
    assert decode_payload(b'{"state": {"on": false}}', nested) == {"on": False}  # a field left out
    plain = PayloadMap.model_validate({"format": "plain", "fields": {"flow": {"scale": 60}}})
    assert decode_payload(b" 0.25 \n", plain) == {"flow": 15.0}
    for bad, payload_map in ((b"NaN", plain), (b"abc", plain), (b'{"i": "x"}', nested), (b"{}", nested)):
        with pytest.raises(PayloadError):
            decode_payload(bad, payload_map)


async def test_a_blocked_pipeline_leaves_messages_with_the_broker_and_loses_none(
    mosquitto: Mosquitto, demo_inventory: Inventory
) -> None:
    """While the pipeline does not take readings (a ``block`` sink stalled), what houqin holds in memory stays
    bounded: the link stops reading, the broker keeps the QoS 1 messages, and every one arrives after."""
    from collectors.mqtt_flow import BACKLOG_HIGH

    flowing = asyncio.Event()
    received: list[Reading] = []

    async def stalled(reading: Reading) -> None:
        await flowing.wait()
        received.append(reading)

    url = f"mqtt://127.0.0.1:{mosquitto.port}"
    # Half the messages wait at the broker for the link's persistent session (they arrive before its
    # subscriptions are acknowledged when it comes back), half come while it is connected.
    link = MqttLink(url, demo_inventory, stalled, client_id="houqin-stalled")
    stop, task = await start_link(link)
    stop.set()
    flowing.set()
    await task
    flowing.clear()
    count = 4 * BACKLOG_HIGH
    messages = [(WATER, orjson.dumps({"flow": n, "total": n})) for n in range(count)]
    await publish(mosquitto.port, messages[: count // 2])
    link = MqttLink(url, demo_inventory, stalled, client_id="houqin-stalled")
    stop = asyncio.Event()
    task = asyncio.create_task(link.run(stop))
    try:
        async with asyncio.timeout(10):
            while link._client is None:
                await asyncio.sleep(0.01)
        client = link._client
        await publish(mosquitto.port, messages[count // 2 :])
        async with asyncio.timeout(10):  # the link reaches its bound and pauses
            while not client.paused:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a paused link takes nothing more
        held = client.backlog
        assert BACKLOG_HIGH <= held < BACKLOG_HIGH + 100, held
        flowing.set()
        async with asyncio.timeout(30):
            while len(received) < count:
                await asyncio.sleep(0.05)
        assert sorted(int(r.fields["flow"]) for r in received) == list(range(count))
        assert client.pauses >= 1 and client.peak_backlog < BACKLOG_HIGH + 100
    finally:
        flowing.set()
        stop.set()
        await task
