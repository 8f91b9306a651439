"""Readings at a crash: with ``telemetry.durable`` a real ``houqin run --role collect`` process, SIGKILLed
while a device streams numbered readings over MQTT (QoS 1, Mosquitto) into influxd, loses none of them once
it is started again; without the setting the same kill loses the readings it held in memory — the test
shows the difference, so it can fail."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiomqtt
import orjson
import pytest

from tests.live_demo import HOUQIN
from tests.servers import Influxd, Mosquitto

TOPIC = "campus/b/water/w1/state"
CLIENT_ID = "houqin-durable-test"
COUNT = 3000
RATE = 400  # messages per second: the kill lands with readings in every stage of the pipeline

INVENTORY = f"""\
site: {{name: Durable campus, timezone: Asia/Shanghai}}
devices:
  - {{id: w1, model: mqtt-water-meter, topic: {TOPIC}, building: b, poll_interval: 10}}
"""


def start(data: Path, mosquitto: Mosquitto, influxd: Influxd, durable: bool) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOUQIN_")}
    env |= {
        "HOUQIN_DATA_DIR": str(data),
        "HOUQIN_INVENTORY": str(data / "devices.yaml"),
        "HOUQIN_MQTT_URL": f"mqtt://127.0.0.1:{mosquitto.port}",
        "HOUQIN_MQTT_CLIENT_ID": CLIENT_ID,
        "HOUQIN_INFLUX__URL": influxd.url,
        "HOUQIN_INFLUX__API": "v1",
        "HOUQIN_INFLUX__DATABASE": data.name,
        "HOUQIN_TELEMETRY__DURABLE": "true" if durable else "false",
        "HOUQIN_LOG_LEVEL": "INFO",
    }
    log = (data / "houqin.log").open("ab")
    return subprocess.Popen([*HOUQIN, "run", "--role", "collect"], cwd=data, env=env, stdout=log, stderr=log)


def stored(influxd: Influxd, database: str) -> int:
    if database not in str(influxd.query("", "SHOW DATABASES")):
        return 0
    series = influxd.query(database, 'SELECT count(distinct("total")) FROM water')
    return int(series[0]["values"][0][1]) if series else 0


async def publish(port: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="durable-test-meter") as client:
        started = time.monotonic()
        for n in range(COUNT):
            await client.publish(TOPIC, orjson.dumps({"flow": 1.0, "total": 1000 + n}), qos=1)
            await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "default"])
async def test_a_sigkill_loses_no_reading_with_the_durable_setting(
    durable: bool, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    data = tmp_path / ("durable" if durable else "default")
    data.mkdir()
    (data / "devices.yaml").write_text(INVENTORY, encoding="utf-8")
    # houqin's persistent session exists before the meter speaks: the broker keeps every message for it.
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=CLIENT_ID, clean_session=False) as session:
        await session.subscribe(TOPIC, qos=1)
    process = start(data, mosquitto, influxd, durable)
    try:
        meter = asyncio.create_task(publish(mosquitto.port))
        deadline = time.monotonic() + 60
        while stored(influxd, data.name) < 800:  # two seconds of the stream are through
            assert time.monotonic() < deadline and not meter.done(), "houqin stored nothing"
            await asyncio.sleep(0.05)
        # A write has just landed: half a flush later the default holds ~200 readings only in memory.
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        before_kill = stored(influxd, data.name)
        await asyncio.sleep(1)
        process = start(data, mosquitto, influxd, durable)
        await meter
        deadline = time.monotonic() + 60
        count = stored(influxd, data.name)
        while count < COUNT and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            last, count = count, stored(influxd, data.name)
            if not durable and count == last and count > before_kill + 100:
                await asyncio.sleep(3)  # the restarted process is through the backlog: what is missing is lost
                if stored(influxd, data.name) == count:
                    break
        print(f"durable={durable} stored={count} of {COUNT} (at the kill: {before_kill})")
        if durable:
            assert count == COUNT, f"{COUNT - count} readings lost at the SIGKILL"
        else:
            assert count < COUNT, "the default lost nothing: the kill missed the readings in memory"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
