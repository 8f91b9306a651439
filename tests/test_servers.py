"""The test servers themselves answer: a broken fixture must fail loudly, never skip."""

import asyncio

import aiomqtt
import asyncpg
import httpx

from tests.servers import Influxd, Mosquitto, Postgres


async def test_postgres_answers(postgres: Postgres) -> None:
    connection = await asyncpg.connect(host=postgres.host, port=postgres.port, user=postgres.user, database="postgres")
    try:
        assert (await connection.fetchval("SELECT 1 + 1")) == 2
    finally:
        await connection.close()


async def test_mosquitto_delivers(mosquitto: Mosquitto) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as subscriber:
        await subscriber.subscribe("campus/test/#", qos=1)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as publisher:
            await publisher.publish("campus/test/x", b"42", qos=1)
        async with asyncio.timeout(5):
            async for message in subscriber.messages:
                assert message.payload == b"42"
                break


def test_influxd_writes_and_queries(influxd: Influxd) -> None:
    with httpx.Client(base_url=influxd.url, timeout=5) as client:
        assert client.post("/query", params={"q": "CREATE DATABASE probe"}).status_code == 200
        written = client.post("/write", params={"db": "probe"}, content=b"electricity,device=m1 power=1.5 1")
        assert written.status_code == 204
        rows = client.get("/query", params={"db": "probe", "q": "SELECT power FROM electricity"}).json()
        assert rows["results"][0]["series"][0]["values"] == [["1970-01-01T00:00:00.000000001Z", 1.5]]
