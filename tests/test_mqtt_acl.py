"""`houqin mqtt acl` and `houqin mqtt passwd` loaded into a real Mosquitto: a device signs in with its
derived password and publishes its own state, is refused another device's topics, and hears only its own
commands; houqin hears every device and commands each one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import aiomqtt
import pytest

from houqin.inventory import Inventory
from houqin.mqtt_acl import device_password, mosquitto_acl, mosquitto_passwords
from tests.servers import Mosquitto, mosquitto_server

SECRET = "a-site-secret-of-some-length"
ONE, TWO = "library-lights-1", "library-lights-2"
STATE = "campus/library/lighting/{}/state"
SET = "campus/library/lighting/{}/set"


@pytest.fixture(scope="module")
def broker(demo_inventory: Inventory) -> Iterator[Mosquitto]:
    passwords = mosquitto_passwords(demo_inventory, SECRET, {"houqin": "houqin-pass"})
    with mosquitto_server(password_file_text=passwords, acl=mosquitto_acl(demo_inventory, "houqin")) as server:
        yield server


def client(broker: Mosquitto, user: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=password, identifier=f"t-{user}")


async def heard(messages: aiomqtt.client.MessagesIterator, seconds: float = 1.0) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in messages:
                got.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
    return got


async def test_a_device_publishes_only_its_own_state(broker: Mosquitto) -> None:
    async with client(broker, "houqin", "houqin-pass") as houqin:
        await houqin.subscribe([(STATE.format(ONE), 1), (STATE.format(TWO), 1)])
        async with client(broker, ONE, device_password(SECRET, ONE)) as device:
            await device.publish(STATE.format(ONE), b"mine", qos=1)
            await device.publish(STATE.format(TWO), b"forged", qos=1)
        got = await heard(houqin.messages)
    assert got == [(STATE.format(ONE), b"mine")]


async def test_a_device_hears_only_its_own_commands(broker: Mosquitto) -> None:
    async with client(broker, ONE, device_password(SECRET, ONE)) as device:
        await device.subscribe([(SET.format(ONE), 1), (SET.format(TWO), 1)])
        async with client(broker, "houqin", "houqin-pass") as houqin:
            await houqin.publish(SET.format(TWO), b"for two", qos=1)
            await houqin.publish(SET.format(ONE), b"for one", qos=1)
        got = await heard(device.messages)
    assert got == [(SET.format(ONE), b"for one")]


async def test_a_wrong_password_or_another_devices_password_is_refused(broker: Mosquitto) -> None:
    for user, password in ((ONE, "guess"), (ONE, device_password(SECRET, TWO)), (ONE, device_password("x" * 20, ONE))):
        with pytest.raises(aiomqtt.MqttError):
            async with client(broker, user, password):
                pass


def test_a_topic_that_would_widen_a_rule_is_refused(demo_inventory: Inventory) -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        mosquitto_acl(demo_inventory, "houqin+")
    with pytest.raises(ValueError, match="at least 16"):
        mosquitto_passwords(demo_inventory, "short", {})
