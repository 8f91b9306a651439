"""MQTT ingestion: messages/s from Mosquitto through houqin's MQTT link into the pipeline, against a bare
aiomqtt subscriber receiving the same messages from the same broker in the same run.

Each receiver first opens a persistent session (QoS 1 subscriptions to the demo inventory's water meter
topics) and leaves; a publisher in another process then sends N payloads, which the broker queues; the
receiver comes back and is timed draining them, so the receiver, not the publisher, sets the pace.
Loss is counted, not assumed.

Then the cost of ``telemetry.durable``: the same drain with houqin's InfluxDB store (a real influxd) behind
the pipeline, by default and durable (each batch fsynced to the spool before its messages are acknowledged
to the broker); ``durable_ratio`` is durable msg/s ÷ default msg/s.

    .venv/bin/python bench/mqtt_ingest.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.mqtt_link import MqttLink  # noqa: E402
from collectors.pipeline import Pipeline  # noqa: E402
from houqin.inventory import load_inventory  # noqa: E402
from houqin.readings import Reading  # noqa: E402
from houqin.settings import InfluxSettings, TelemetrySettings  # noqa: E402
from houqin.telemetry.influx_store import InfluxStore  # noqa: E402
from houqin.telemetry.spool import Spool  # noqa: E402
from tests.servers import influxd_server, mosquitto_server  # noqa: E402


def publish(port: int, topics: list[str], count: int) -> None:
    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", port, max_queued_outgoing_messages=0) as client:
            for n in range(count):
                payload = orjson.dumps({"flow": n % 100 / 10, "total": 1000 + n / 1000})
                await client.publish(topics[n % len(topics)], payload, qos=1)

    asyncio.run(main())


def publish_all(port: int, topics: list[str], count: int) -> None:
    """Publish in another process while the receiver is away; the broker queues it all for the session."""
    context = multiprocessing.get_context("spawn")
    publisher = context.Process(target=publish, args=(port, topics, count))
    publisher.start()
    publisher.join(600)


async def bare(port: int, topics: list[str], count: int) -> tuple[float, int]:
    def client() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", port, identifier="bench-bare", clean_session=False)

    async with client() as subscriber:
        await subscriber.subscribe([(topic, 1) for topic in topics])
    publish_all(port, topics, count)
    received = 0
    started = time.perf_counter()
    async with client() as subscriber:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(120):
                async for message in subscriber.messages:
                    received += 1
                    orjson.loads(message.payload)  # type: ignore[arg-type]
                    if received == count:
                        break
    return received / (time.perf_counter() - started), received


class CountingSink:
    name = "count"

    def __init__(self, expected: int, store: InfluxStore | None = None) -> None:
        self.expected = expected
        self.store = store
        self.count = 0
        self.done = asyncio.Event()

    async def consume(self, readings: list[Reading]) -> None:
        if self.store is not None:
            await self.store.consume(readings)
        self.count += len(readings)
        if self.count >= self.expected:
            self.done.set()


async def houqin(
    port: int, topics: list[str], count: int, inventory: Any, store: InfluxStore | None = None
) -> tuple[float, int]:
    """Drain rate through the link and the pipeline, into ``store`` if given (durable if its settings say)."""
    client_id = f"bench-houqin-{id(store)}"

    async def connect_once() -> None:
        link = MqttLink(f"mqtt://127.0.0.1:{port}", inventory, no_sink, client_id=client_id)
        stop = asyncio.Event()
        task = asyncio.create_task(link.run(stop))
        await asyncio.wait_for(link.connected.wait(), 10)
        stop.set()
        await task

    async def no_sink(_reading: Reading) -> None:
        pass

    await connect_once()  # the session and its subscriptions now exist on the broker
    publish_all(port, topics, count)
    pipeline = Pipeline()
    sink = CountingSink(count, store)
    durable = store is not None and store.settings.durable
    pipeline.add_sink(sink, settle=durable)
    link = MqttLink(f"mqtt://127.0.0.1:{port}", inventory, pipeline.publish, client_id=client_id,
                    settled=pipeline.settled if durable else None)  # fmt: skip
    stop = asyncio.Event()
    started = time.perf_counter()
    tasks = [asyncio.create_task(pipeline.run(stop)), asyncio.create_task(link.run(stop))]
    if store is not None:
        tasks.append(asyncio.create_task(store.run(stop)))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(sink.done.wait(), 120)
    seconds = time.perf_counter() - started
    stop.set()
    await asyncio.gather(*tasks)
    return sink.count / seconds, sink.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    inventory = load_inventory(ROOT / "devices.yaml")
    topics = [device.topic for device in inventory.mqtt_devices() if inventory.model_of(device).kind == "water"]
    topics = [topic for topic in topics if topic]
    stored: dict[bool, tuple[float, int]] = {}
    with mosquitto_server() as broker, influxd_server() as influxd, tempfile.TemporaryDirectory() as spools:
        bare_rate, bare_received = asyncio.run(bare(broker.port, topics, args.messages))
        houqin_rate, houqin_received = asyncio.run(houqin(broker.port, topics, args.messages, inventory))
        for durable in (False, True):
            influx = InfluxSettings(url=influxd.url, api="v1", database=f"bench_{int(durable)}")
            settings = TelemetrySettings(durable=durable)
            store = InfluxStore(influx, settings, Spool(Path(spools) / str(durable), settings.spool_max_bytes))
            stored[durable] = asyncio.run(houqin(broker.port, topics, args.messages, inventory, store))
    lost = args.messages - houqin_received
    print(f"messages={args.messages} topics={len(topics)} qos=1")
    print(f"bare aiomqtt: {bare_rate:,.0f} msg/s ({bare_received} received)")
    print(f"houqin MQTT link -> pipeline: {houqin_rate:,.0f} msg/s ({houqin_received} received)")
    for durable, (rate, received) in stored.items():
        print(f"houqin -> InfluxDB store, durable={durable}: {rate:,.0f} msg/s ({received} received)")
    durable_ratio = stored[True][0] / stored[False][0]
    print(f"mqtt_ratio={houqin_rate / bare_rate:.2f} lost={lost} default_msg_s={stored[False][0]:.0f} "
          f"durable_msg_s={stored[True][0]:.0f} durable_ratio={durable_ratio:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
