"""The InfluxDB telemetry store: batched line-protocol writes that survive outages, InfluxQL queries.

Readings are encoded as they arrive and cut into batches of ``batch_points`` (or whatever has waited
``flush_seconds``). One write is in flight at a time, as a task of its own, so that batches reach
InfluxDB in the order they were made and a write that hangs holds nothing else up. While InfluxDB is
unreachable each batch is in the durable spool within ``flush_seconds`` of being cut — a live write
slower than that leaves a copy there too — and once the spool holds anything, new batches queue behind
it there: the replay (paced, oldest first) is also the probe that finds InfluxDB back. Data InfluxDB
refuses is bisected until the refused points are isolated: those are counted and logged with InfluxDB's
reason, every other point is written. A graceful stop writes or spools everything held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from houqin.backoff import Backoff
from houqin.readings import FieldValue, GarbageLog, Reading
from houqin.settings import InfluxSettings, TelemetrySettings
from houqin.telemetry.influx_client import InfluxClient, InfluxUnavailable, WriteRejected
from houqin.telemetry.line_protocol import LineEncoder, from_timestamp_ns, timestamp_ns
from houqin.telemetry.model import AHEAD, MEASUREMENTS, BoundaryQuery, LatestPoint, SeriesPoint, SeriesQuery
from houqin.telemetry.spool import Spool, SpooledBatch

log = logging.getLogger(__name__)

WRITTEN = Counter("houqin_telemetry_points_written_total", "Points written to InfluxDB", ["path"])
WRITE_ERRORS = Counter("houqin_telemetry_write_errors_total", "Failed InfluxDB writes", ["reason"])
# The longest InfluxDB may ask houqin to wait (Retry-After) before writes are tried again.
MAX_RETRY_AFTER_S = 600.0
_RETRY = Backoff(0.5, 30.0, jitter=0.25)
# A query for more devices than this reads every device of the measurement instead of naming them.
FILTERED_DEVICES = 64
REJECTED = Counter("houqin_telemetry_points_rejected_total", "Points InfluxDB refused as bad data; not retried")

# Statuses that say nothing about the data (credentials, a missing database): retrying later is right,
# bisecting would throw good points away.
_NOT_ABOUT_DATA = {401, 403, 404}


def quote_identifier(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _duration(delta: timedelta) -> str:
    return f"{delta // timedelta(microseconds=1)}u"


@dataclass(eq=False)
class _Batch:
    cut_at: float  # monotonic: when it stopped taking lines
    lines: list[str]
    copy: SpooledBatch | None = None  # its copy in the spool, made when it waited too long in memory


@dataclass
class _Attempt:
    """The one write in flight: a fresh batch (``live``) or the spool's oldest (``replay``)."""

    task: asyncio.Task[None]
    live: _Batch | None = None
    replay: SpooledBatch | None = None


class InfluxStore:
    """A ``TelemetryStore`` on InfluxDB 1.x (v1 API) or 2.x / 3.x / 1.8+ (v2 API)."""

    def __init__(
        self,
        influx: InfluxSettings,
        telemetry: TelemetrySettings,
        spool: Spool,
        client: InfluxClient | None = None,
    ) -> None:
        self.settings = telemetry
        self.client = client or InfluxClient(
            influx, timeout=telemetry.write_timeout_seconds, query_timeout=telemetry.query_timeout_seconds
        )
        self.create_database = influx.api == "v1"
        self.spool = spool
        self.garbage = GarbageLog(log)
        self.encoder = LineEncoder()
        self._lines: list[str] = []
        self._ready: deque[_Batch] = deque()
        self._attempt: _Attempt | None = None  # the write in flight, if any
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._failures = 0
        self._retry_at = 0.0  # monotonic; InfluxDB is not tried before this after a failure
        self._replay_at = 0.0  # monotonic; pace of the replay
        self._oldest_line_at: float | None = None
        self.rejected_points = 0
        self.written_points = 0
        self.replayed_points = 0

    @property
    def name(self) -> str:
        return "telemetry:influxdb"

    # -- writing ---------------------------------------------------------------------------------------

    async def consume(self, readings: Sequence[Reading]) -> None:
        lines = self.encoder.lines(readings, self.garbage.report)
        if not lines:
            return
        if self.settings.durable:
            await self._consume_durably(lines)
            return
        if self._oldest_line_at is None:
            self._oldest_line_at = time.monotonic()
            self._wake.set()  # the writer's next deadline is now this batch's age, not the retry timer
        self._lines.extend(lines)
        size = self.settings.batch_points
        while len(self._lines) >= size:
            self._ready.append(_Batch(time.monotonic(), self._lines[:size]))
            del self._lines[:size]
        if not self._lines:
            self._oldest_line_at = None
        if self._ready:
            self._wake.set()
        # Backpressure: a few batches may wait for the writer; beyond that the pipeline waits (and its
        # bounded queue says so), instead of memory growing while InfluxDB is slow.
        while len(self._ready) > 4:
            self._room.clear()
            await self._room.wait()

    async def _consume_durably(self, lines: list[str]) -> None:
        """Every batch the pipeline hands over is in the spool (fsynced) before ``consume`` returns, then
        written like any other and its copy removed: a SIGKILL loses nothing the sources were told is
        stored. Batches are not gathered up to ``batch_points`` first — under load the pipeline's own
        batches grow while the writer is busy, which keeps the writes few."""
        size = self.settings.batch_points
        for start in range(0, len(lines), size):
            batch = _Batch(time.monotonic(), lines[start : start + size])
            await self._save(batch)  # before the writer can see it: one copy, made once
            self._ready.append(batch)
        self._wake.set()
        while len(self._ready) > 4:
            self._room.clear()
            await self._room.wait()

    async def run(self, stop: asyncio.Event) -> None:
        if self.create_database:
            try:
                await self.client.create_database()
            except InfluxUnavailable as exc:
                log.warning("InfluxDB not reachable at start (%s); readings are spooled until it is", exc)
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waking = asyncio.create_task(self._wake.wait())
                waits: set[asyncio.Future[Any]] = {stopping, waking}
                if self._attempt is not None:
                    waits.add(self._attempt.task)
                await asyncio.wait(waits, timeout=self._next_wake(), return_when="FIRST_COMPLETED")
                waking.cancel()
                self._wake.clear()
                await self._work_once()
        finally:
            stopping.cancel()
            await self._flush_on_stop()
            await self.client.close()

    def _next_wake(self) -> float:
        now = time.monotonic()
        age = self.settings.flush_seconds
        deadlines = []
        if self._oldest_line_at is not None:
            deadlines.append(self._oldest_line_at + age)
        unsaved = [batch.cut_at for batch in self._in_memory() if batch.copy is None]
        if unsaved:
            deadlines.append(min(unsaved) + age)
        if self._attempt is None and self._spooled():
            deadlines.append(max(self._retry_at, self._replay_at))
        return max(0.0, min(deadlines) - now) if deadlines else age

    def _in_memory(self) -> list[_Batch]:
        live = self._attempt.live if self._attempt is not None else None
        return [*([live] if live is not None else []), *self._ready]

    def _spooled(self) -> bool:
        """The spool holds batches that are no longer in memory (not just copies of ones that are)."""
        copies = sum(1 for batch in self._in_memory() if batch.copy is not None)
        return len(self.spool) > copies

    async def _work_once(self) -> None:
        """One pass of the writer. Writes run as a task of their own (``_attempt``), so that while one
        hangs on an unreachable InfluxDB nothing else waits for it: every batch is in the spool within
        ``flush_seconds`` of being cut, whatever the retry timer and the write timeout say."""
        if self._attempt is not None and self._attempt.task.done():
            await self._finish(self._attempt)
        now = time.monotonic()
        age = self.settings.flush_seconds
        if self._oldest_line_at is not None and now - self._oldest_line_at >= age:
            self._cut()
        # A batch held in memory longer than a batch may wait (behind a slow write) gets a copy in the
        # spool, where a crash cannot reach it; the copy goes once the batch is written.
        for batch in self._in_memory():
            if batch.copy is None and now - batch.cut_at >= age:
                await self._save(batch)
        while self._ready:
            if self._spooled() or now < self._retry_at:  # down, or older batches wait in the spool
                await self._save(self._ready.popleft())
            elif self._attempt is None:
                batch = self._ready.popleft()
                self._attempt = _Attempt(asyncio.create_task(self._write_isolating(batch.lines)), live=batch)
            else:
                break  # waits for the live write before it
        if len(self._ready) <= 4:
            self._room.set()
        if self._attempt is None and self._spooled() and time.monotonic() >= max(self._retry_at, self._replay_at):
            oldest = self.spool.oldest()
            if oldest is not None:
                self._attempt = _Attempt(asyncio.create_task(self._replay(oldest)), replay=oldest)

    async def _save(self, batch: _Batch) -> None:
        """Put the batch in the spool unless a copy is there already."""
        if batch.copy is None:
            body = ("\n".join(batch.lines) + "\n").encode()
            batch.copy = await asyncio.to_thread(self.spool.append, body, len(batch.lines))

    async def _finish(self, attempt: _Attempt) -> None:
        self._attempt = None
        try:
            attempt.task.result()
        except (InfluxUnavailable, asyncio.CancelledError) as exc:  # cancelled: a stop cut the write short
            if isinstance(exc, InfluxUnavailable):
                self._down(exc)
            if attempt.live is not None:
                await self._save(attempt.live)  # parts already written are written again later
            return
        except Exception:
            if attempt.live is not None:
                await self._save(attempt.live)
            raise
        if attempt.live is not None:
            self._up()
            if attempt.live.copy is not None:
                await asyncio.to_thread(self.spool.remove, attempt.live.copy)
            self._written(len(attempt.live.lines), "live")
        elif attempt.replay is not None:
            if self._failures:
                log.info("InfluxDB answers again; writing the %d spooled points", self.spool.points)
            self._up()
            await asyncio.to_thread(self.spool.remove, attempt.replay)
            self._written(attempt.replay.points, "replay")
            self.replayed_points += attempt.replay.points
            self._replay_at = time.monotonic() + attempt.replay.points / self.settings.replay_points_per_second

    def _cut(self) -> None:
        if self._lines:
            self._ready.append(_Batch(time.monotonic(), self._lines))
            self._lines = []
        self._oldest_line_at = None

    def _written(self, points: int, path: str) -> None:
        WRITTEN.labels(path).inc(points)
        self.written_points += points

    async def _replay(self, batch: SpooledBatch) -> None:
        body = await asyncio.to_thread(batch.read)
        await self._write_isolating(body.decode().splitlines())

    async def _write_isolating(self, lines: list[str]) -> None:
        """Write ``lines``; if InfluxDB refuses the data, split until the refused points are alone, drop
        those (counted, logged) and write the rest. ``InfluxUnavailable`` goes to the caller."""
        try:
            await self.client.write(("\n".join(lines) + "\n").encode())
            return
        except WriteRejected as exc:
            if exc.status in _NOT_ABOUT_DATA:
                raise InfluxUnavailable(f"InfluxDB refused houqin ({exc}); check the influx settings") from None
            WRITE_ERRORS.labels("rejected").inc()
            if len(lines) == 1:
                self.rejected_points += 1
                REJECTED.inc()
                log.error("InfluxDB refused a point (%s): %s", exc, lines[0][:300])
                return
        middle = len(lines) // 2
        await self._write_isolating(lines[:middle])
        await self._write_isolating(lines[middle:])

    def _down(self, exc: InfluxUnavailable) -> None:
        self._failures += 1
        WRITE_ERRORS.labels("unavailable").inc()
        delay = _RETRY.delay(self._failures)
        # InfluxDB's own word on when to come back wins over the backoff (up to a limit: readings are
        # spooled meanwhile, and a wrong header must not silence writes for a day).
        if exc.retry_after is not None:
            delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
        self._retry_at = time.monotonic() + delay
        level = logging.ERROR if self._failures == 1 else logging.DEBUG
        log.log(level, "InfluxDB write failed (%s); spooling, next try in %.1f s", exc, delay)

    def _up(self) -> None:
        self._failures = 0
        self._retry_at = 0.0

    async def _flush_on_stop(self) -> None:
        if self._attempt is not None:
            with contextlib.suppress(Exception):  # its outcome is handled below; a failure spools its batch
                await asyncio.wait_for(asyncio.shield(self._attempt.task), self.settings.write_timeout_seconds)
            if not self._attempt.task.done():
                self._attempt.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._attempt.task
            with contextlib.suppress(Exception):  # a failed write's batch is in the spool by now
                await self._finish(self._attempt)
            self._attempt = None
        self._cut()
        while self._ready:
            down = self._spooled() or self._failures > 0
            batch = self._ready.popleft()
            if down:
                await self._save(batch)
                continue
            try:
                await asyncio.wait_for(self._write_isolating(batch.lines), self.settings.write_timeout_seconds)
            except (InfluxUnavailable, TimeoutError):
                await self._save(batch)
                continue
            if batch.copy is not None:
                await asyncio.to_thread(self.spool.remove, batch.copy)
            self._written(len(batch.lines), "live")
        self._room.set()
        if len(self.spool):
            log.info("stopping with %d points in the spool; they are written after the next start", self.spool.points)

    # -- reading ---------------------------------------------------------------------------------------

    async def latest(self, devices: Sequence[str] | None = None) -> list[LatestPoint]:
        measurements = ",".join(quote_identifier(m) for m in MEASUREMENTS)
        where = f"time > now() - {self.settings.latest_lookback_days}d"
        if devices is not None:
            if not devices:
                return []
            where += " AND (" + " OR ".join(f'"device" = {quote_string(d)}' for d in devices) + ")"
        # Every name and value in the query is quoted by quote_identifier / quote_string.
        query = f'SELECT *::field FROM {measurements} WHERE {where} GROUP BY "device" ORDER BY time DESC LIMIT 1'
        points = []
        for series in await self.client.query(query):
            columns = series["columns"]
            for row in series.get("values", []):
                fields = {
                    name: _field_value(value)
                    for name, value in zip(columns[1:], row[1:], strict=True)
                    if value is not None
                }
                points.append(LatestPoint(series["name"], series["tags"]["device"], from_timestamp_ns(row[0]), fields))
        return sorted(points, key=lambda point: (point.measurement, point.device))

    async def series(self, query: SeriesQuery) -> list[SeriesPoint]:
        # The aggregate is one of AGGREGATES; names and values are quoted.
        influxql = (
            f"SELECT {query.agg}({quote_identifier(query.field)}) FROM {quote_identifier(query.measurement)} "
            f'WHERE "device" = {quote_string(query.device)} '
            f"AND time >= {timestamp_ns(query.start)} AND time < {timestamp_ns(query.end)} "
            f"GROUP BY time({_duration(query.every)}, {_duration(query.offset)}) fill(none)"
        )
        points = []
        for series in await self.client.query(influxql):
            for ts, value in series.get("values", []):
                if value is not None:
                    points.append(
                        SeriesPoint(from_timestamp_ns(ts), int(value) if query.agg == "count" else _field_value(value))
                    )
        return points

    async def lasts(self, query: BoundaryQuery) -> dict[str, list[float | None]]:
        found: dict[str, list[float | None]] = {device: [None] * len(query.boundaries) for device in query.devices}
        if not query.devices or not query.boundaries:
            return found
        where = ""
        if len(query.devices) <= FILTERED_DEVICES:  # else every device is read and the others dropped here
            where = " AND (" + " OR ".join(f'"device" = {quote_string(d)}' for d in query.devices) + ")"
        lows = [query.boundaries[0] - query.lookback, *query.boundaries[:-1]]
        ahead = datetime.now(UTC) + AHEAD
        windows = [(index, low, high) for index, (low, high) in enumerate(zip(lows, query.boundaries, strict=True))
                   if low <= ahead]  # fmt: skip
        if not windows:
            return found
        # One statement per window, all in one request: InfluxQL's last() of each device in the window.
        statements = [
            f"SELECT last({quote_identifier(query.field)}) FROM {quote_identifier(query.measurement)} "
            f'WHERE time >= {timestamp_ns(low)} AND time < {timestamp_ns(high)}{where} GROUP BY "device"'
            for _, low, high in windows
        ]
        answers = await self.client.query_all(";".join(statements))
        for (index, _, _), answer in zip(windows, answers, strict=True):
            for series in answer:
                values = found.get(series.get("tags", {}).get("device", ""))
                for _, value in series.get("values", [])[-1:]:
                    if values is not None and isinstance(value, int | float) and not isinstance(value, bool):
                        values[index] = float(value)
        return found


def _field_value(value: Any) -> FieldValue:
    # Numbers are stored as floats, but InfluxDB's JSON writes 230.0 as 230.
    return value if isinstance(value, bool | str) else float(value)
