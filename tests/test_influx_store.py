"""The InfluxDB store against a real influxd: exact values, escaping, bad points isolated, the v2 API,
and not one reading lost or doubled across an InfluxDB outage and a houqin restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from houqin.readings import Reading
from houqin.settings import InfluxSettings, TelemetrySettings
from houqin.telemetry.influx_store import InfluxStore
from houqin.telemetry.spool import Spool
from tests.influx_v2_shim import InfluxV2Shim
from tests.servers import Influxd, influxd_server

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
FAST = TelemetrySettings(batch_points=50, flush_seconds=0.05, write_timeout_seconds=3.0)


def electricity(device: str, ts: datetime, tags: dict[str, str] | None = None, **fields: object) -> Reading:
    return Reading(device, ts, fields, {"kind": "electricity", "device": device, "building": "B1", **(tags or {})})  # type: ignore[arg-type]


class Running:
    """An InfluxStore with its writer running, stopped (flushing) on exit."""

    def __init__(self, store: InfluxStore) -> None:
        self.store = store
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InfluxStore:
        self.task = asyncio.create_task(self.store.run(self.stop))
        return self.store

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


def v1_store(influxd: Influxd, database: str, tmp_path: Path, telemetry: TelemetrySettings = FAST) -> InfluxStore:
    settings = InfluxSettings(url=influxd.url, api="v1", database=database)
    return InfluxStore(settings, telemetry, Spool(tmp_path / "spool", telemetry.spool_max_bytes))


async def wait_for(condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_values_tags_and_timestamps_come_back_exact(influxd: Influxd, tmp_path: Path) -> None:
    awkward = {"building": 'Dorm 1, "North" wing', "room": "a=b c", "gateway": "gw\\1"}
    readings = [
        electricity("m 1", T0 + timedelta(microseconds=123_457), awkward, voltage=229.75, relay_closed=True,
                    note='said "hi" \\ bye', failures=3),
        electricity("m,2", T0 + timedelta(seconds=1), voltage=231, relay_closed=False),
    ]  # fmt: skip
    async with Running(v1_store(influxd, "exact", tmp_path)) as store:
        await store.consume(readings)
        await wait_for(lambda: store.written_points == 2)
    series = influxd.query("exact", 'SELECT * FROM electricity GROUP BY "device"')
    by_device = {s["tags"]["device"]: dict(zip(s["columns"], s["values"][0], strict=True)) for s in series}
    first = by_device["m 1"]
    assert first["time"] == 1_793_606_400_123_457_000  # to the microsecond
    assert first["voltage"] == 229.75 and first["relay_closed"] is True and first["failures"] == 3.0
    assert first["note"] == 'said "hi" \\ bye'
    assert (first["building"], first["room"], first["gateway"]) == ('Dorm 1, "North" wing', "a=b c", "gw\\1")
    assert by_device["m,2"]["relay_closed"] is False
    # Integers are stored as floats: the same field never changes type between writes.
    types = influxd.query("exact", "SHOW FIELD KEYS FROM electricity")[0]["values"]
    assert dict(types)["failures"] == "float" and dict(types)["voltage"] == "float"


async def test_a_bad_point_is_isolated_and_the_rest_written(influxd: Influxd, tmp_path: Path) -> None:
    async with Running(v1_store(influxd, "conflict", tmp_path)) as store:
        await store.consume([electricity("m1", T0, voltage=230.0)])
        await wait_for(lambda: store.written_points == 1)
        batch = [electricity("m1", T0 + timedelta(seconds=i), voltage=220.0 + i) for i in range(1, 40)]
        batch[17] = electricity("m1", T0 + timedelta(seconds=18), voltage="not a number")
        await store.consume(batch)
        await wait_for(lambda: store.rejected_points == 1)
    [series] = influxd.query("conflict", "SELECT count(voltage) FROM electricity")
    assert series["values"][0][1] == 39  # the first point and the 38 good ones
    assert len(store.spool) == 0


async def test_v2_api_with_token_org_bucket_and_a_413_split(influxd: Influxd, tmp_path: Path) -> None:
    await asyncio.to_thread(influxd.query, "v2bucket", "CREATE DATABASE v2bucket")
    shim = InfluxV2Shim(influxd.url, token="s3cret-token", org="campus", max_body=4000)
    await shim.start()
    try:
        settings = InfluxSettings(url=shim.url, api="v2", token=SecretStr("s3cret-token"), org="campus",
                                  bucket="v2bucket")  # fmt: skip
        telemetry = TelemetrySettings(batch_points=200, flush_seconds=0.05)
        store = InfluxStore(settings, telemetry, Spool(tmp_path / "spool", telemetry.spool_max_bytes))
        async with Running(store):
            readings = [electricity(f"m{i % 7}", T0 + timedelta(seconds=i), power=float(i)) for i in range(200)]
            await store.consume(readings)
            await wait_for(lambda: store.written_points == 200)
        assert shim.too_large >= 1 and store.rejected_points == 0  # split until each part fitted
    finally:
        await shim.stop()
    [series] = influxd.query("v2bucket", "SELECT count(power), sum(power) FROM electricity")
    assert series["values"][0][1:] == [200, sum(range(200))]


async def test_a_wrong_token_keeps_the_points_in_the_spool(influxd: Influxd, tmp_path: Path) -> None:
    shim = InfluxV2Shim(influxd.url, token="right", org="campus")
    await shim.start()
    try:
        settings = InfluxSettings(url=shim.url, api="v2", token=SecretStr("wrong"), org="campus", bucket="x")
        store = InfluxStore(settings, FAST, Spool(tmp_path / "spool", FAST.spool_max_bytes))
        async with Running(store):
            await store.consume([electricity("m1", T0, power=1.0)])
            await wait_for(lambda: store.spool.points == 1)
        assert store.rejected_points == 0  # a 401 says nothing about the data: nothing is thrown away
    finally:
        await shim.stop()


@pytest.fixture
async def outage_influxd() -> AsyncIterator[Influxd]:
    with influxd_server() as server:
        yield server


def feeder(influxd: Influxd, data: Path, first: int, *extra: str, rate: int = 400) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.telemetry_feeder", "--influx", influxd.url, "--data", str(data),
         "--first", str(first), "--rate", str(rate), *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def last_handed(output: str) -> int:
    handed = [int(line.split()[1]) for line in output.splitlines() if line.startswith("handed ")]
    assert handed == list(range(handed[0], handed[-1] + 1)), "readings handed out of order"
    return handed[-1]


async def test_no_reading_lost_or_doubled_across_an_outage_and_a_restart(
    outage_influxd: Influxd, tmp_path: Path
) -> None:
    influxd = outage_influxd
    first = feeder(influxd, tmp_path, 0)
    await asyncio.sleep(2.0)  # writing straight to InfluxDB
    influxd.stop()
    await asyncio.sleep(1.5)  # spooling
    first.send_signal(signal.SIGTERM)  # houqin restarts in the middle of the outage
    output, errors = await asyncio.to_thread(first.communicate, timeout=30)
    assert first.returncode == 0, errors
    handed = last_handed(output)
    assert "stopped spool=0" not in output  # the outage left points in the spool

    second = feeder(influxd, tmp_path, handed + 1, "--count", "600", "--drain")
    await asyncio.sleep(1.0)  # still spooling, behind what the first process left
    influxd.start()
    output, errors = await asyncio.to_thread(second.communicate, timeout=60)
    assert second.returncode == 0, errors
    last = last_handed(output)
    assert last == handed + 600 and "stopped spool=0" in output

    expected = last + 1
    rows = influxd.query("outage", 'SELECT count("index"), sum("index") FROM electricity GROUP BY "device"')
    counts = {row["tags"]["device"]: row["values"][0][1] for row in rows}
    assert counts == {f"m{d}": len(range(d, expected, 5)) for d in range(5)}
    [total] = influxd.query("outage", 'SELECT count("index"), sum("index") FROM electricity')
    assert total["values"][0][1:] == [expected, expected * (expected - 1) // 2]  # each index exactly once


@pytest.mark.parametrize("api", ["v1", "v2"])
async def test_retry_after_from_a_busy_influxdb_is_honoured(api: str, tmp_path: Path) -> None:
    """A 429 with Retry-After: 2 keeps houqin away for 2 s (its own backoff would come back after 0.5 s);
    the readings meanwhile go to the spool, and once InfluxDB takes writes they are all written."""
    from aiohttp import web

    attempts: list[float] = []
    written: list[bytes] = []
    loop = asyncio.get_running_loop()

    async def write(request: web.Request) -> web.Response:
        attempts.append(loop.time())
        if len(attempts) == 1:
            return web.Response(status=429, text='{"error": "too many requests"}', headers={"Retry-After": "2"})
        written.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/write", write)
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = InfluxSettings(url=f"http://127.0.0.1:{port}", api=api, token=SecretStr("t"), database="houqin")
    store = InfluxStore(settings, FAST, Spool(tmp_path / "spool", FAST.spool_max_bytes))
    try:
        async with Running(store):
            for second in range(30):
                await store.consume([electricity("m1", T0 + timedelta(seconds=second), power=float(second))])
                await asyncio.sleep(0.1)
            await wait_for(lambda: store.written_points == 30, 10)
        assert attempts[1] - attempts[0] >= 1.95, attempts[:3]
        assert sum(body.count(b"\n") for body in written) == 30
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("outage", "into"), [("stopped", 3.0), ("stopped", 9.0), ("frozen", 6.0)])
async def test_a_kill_during_an_outage_loses_no_reading_older_than_a_flush(
    outage_influxd: Influxd, tmp_path: Path, outage: str, into: float
) -> None:
    """While InfluxDB is away (stopped: refused at once; frozen: connections hang until the write timeout),
    every batch reaches the spool within ``flush_seconds`` (0.2 s in the feeder), whatever the retry timer
    says: a SIGKILL at any point of the outage loses only the readings of the last moments. 40 readings a
    second fill a batch of 100 in 2.5 s: the batch age, not its size, must send them on."""
    influxd = outage_influxd
    assert influxd.process is not None
    rate = 40
    process = feeder(influxd, tmp_path, 0, rate=rate)
    await asyncio.sleep(1.5)  # written straight to InfluxDB
    frozen = influxd.process
    if outage == "stopped":
        influxd.stop()
    else:
        frozen.send_signal(signal.SIGSTOP)
    await asyncio.sleep(into)  # the retry timer has grown to seconds by now
    process.kill()
    output, _ = await asyncio.to_thread(process.communicate, timeout=30)
    last = last_handed(output)
    if outage == "stopped":
        influxd.start()
    else:
        frozen.send_signal(signal.SIGCONT)
    drain = feeder(influxd, tmp_path, last + 1, "--count", "0", "--drain")  # writes back what was spooled
    output, errors = await asyncio.to_thread(drain.communicate, timeout=60)
    assert drain.returncode == 0 and "stopped spool=0" in output, errors
    present = {int(row[1]) for series in influxd.query("outage", 'SELECT "index" FROM electricity')
               for row in series["values"]}  # fmt: skip
    lost = [index for index in range(last + 1) if index not in present]
    # What may be lost: the batch still filling (0.2 s) and the readings handed while the kill landed.
    allowed = int(rate * (0.2 + 0.3))
    assert not lost or lost[0] > last - allowed, f"lost {len(lost)} readings, the oldest {last - lost[0]} back"
