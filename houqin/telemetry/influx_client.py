"""Talking to InfluxDB: line-protocol writes through the v1 or v2 API, InfluxQL queries through ``/query``.

Every failure is sorted into one of two kinds, because the store treats them differently:
``InfluxUnavailable`` (connection refused, timeout, 5xx, 429: try again later, keep the batch) and
``WriteRejected`` (a 4xx about the data itself: retrying the same bytes can never succeed).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx
import orjson
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from houqin.settings import InfluxSettings

log = logging.getLogger(__name__)


class InfluxUnavailable(Exception):  # noqa: N818 - reads as a state
    """InfluxDB cannot take the request now; the same request may succeed later, not before
    ``retry_after`` seconds when InfluxDB said so (a 429 or 503 with ``Retry-After``)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header's wait in seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class WriteRejected(Exception):  # noqa: N818 - reads as what happened
    """InfluxDB refused the data (400, 413, 422...): sending the same batch again cannot succeed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class QueryError(Exception):
    """InfluxDB refused an InfluxQL query (bad syntax, unknown database...)."""


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


class InfluxClient:
    """One InfluxDB server, as the settings describe it."""

    def __init__(self, settings: InfluxSettings, timeout: float = 10.0, query_timeout: float = 60.0) -> None:
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.timeout = timeout
        self.query_timeout = query_timeout
        auth: httpx.Auth | None = None
        headers: dict[str, str] = {}
        if settings.api == "v2" and settings.token is not None:
            headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        elif settings.username:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._auth, self._headers = auth, headers
        self._client: httpx.AsyncClient | None = None
        self._v2: InfluxDBClientAsync | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        # Made on first use (again after close): queries may come after the writer has stopped.
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self.url, auth=self._auth, headers=self._headers, timeout=self.timeout
            )
        return self._client

    async def write(self, body: bytes) -> None:
        """Write line protocol (nanosecond timestamps)."""
        if self.settings.api == "v2":
            await self._write_v2(body)
        else:
            await self._write_v1(body)

    async def _write_v1(self, body: bytes) -> None:
        params = {"db": self.settings.database, "precision": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        try:
            response = await self._http.post("/write", params=params, content=body)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 204:
            return
        message = _error_text(response.content)
        if _transient(response.status_code):
            wait = retry_after_seconds(response.headers.get("retry-after"))
            raise InfluxUnavailable(f"{response.status_code}: {message}", wait)
        raise WriteRejected(response.status_code, message)

    async def _write_v2(self, body: bytes) -> None:
        if self._v2 is None:
            token = self.settings.token.get_secret_value() if self.settings.token else ""
            self._v2 = InfluxDBClientAsync(
                self.url, token=token, org=self.settings.org, timeout=int(self.timeout * 1000)
            )
        try:
            await self._v2.write_api().write(
                self.settings.bucket,
                self.settings.org,
                record=body,
                write_precision=WritePrecision.NS,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            message = _error_text(exc.body.encode() if isinstance(exc.body, str) else exc.body or b"")
            if status == 0 or _transient(status):
                headers: Any = exc.headers or {}  # aiohttp's case-insensitive headers, or urllib3's
                wait = retry_after_seconds(headers.get("Retry-After") or headers.get("retry-after"))
                raise InfluxUnavailable(f"{status}: {message or exc.reason}", wait) from None
            raise WriteRejected(status, message or str(exc.reason)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise InfluxUnavailable(f"{type(exc).__name__}: {exc}") from None

    async def query(self, influxql: str) -> list[dict[str, Any]]:
        """The series of the first statement's result, timestamps in nanoseconds (``epoch=ns``)."""
        return (await self.query_all(influxql))[0]

    async def query_all(self, influxql: str) -> list[list[dict[str, Any]]]:
        """The series of every statement's result (statements separated by ``;``), in order."""
        params = {"db": self.settings.database, "q": influxql, "epoch": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        try:
            response = await self._http.post("/query", data=params, timeout=self.query_timeout)
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"{type(exc).__name__}: {exc}") from None
        if _transient(response.status_code):
            raise InfluxUnavailable(f"{response.status_code}: {_error_text(response.content)}")
        if response.status_code != 200:
            raise QueryError(f"{response.status_code}: {_error_text(response.content)}")
        document = orjson.loads(response.content)
        if "error" in document:
            raise QueryError(document["error"])
        answers: list[list[dict[str, Any]]] = []
        for result in document.get("results", [{}]):
            if "error" in result:
                raise QueryError(result["error"])
            answers.append(result.get("series", []))
        return answers

    async def create_database(self) -> None:
        """v1: make sure the database exists (InfluxDB answers 404 to writes into a missing one)."""
        try:
            response = await self._http.post("/query", data={"q": f'CREATE DATABASE "{self.settings.database}"'})
        except httpx.HTTPError as exc:
            raise InfluxUnavailable(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            log.warning("cannot create InfluxDB database %s: %s %s", self.settings.database,
                        response.status_code, _error_text(response.content))  # fmt: skip

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._v2 is not None:
            await self._v2.close()  # type: ignore[no-untyped-call]
            self._v2 = None
        await asyncio.sleep(0)  # let aiohttp close its connector's sockets


def _error_text(body: bytes) -> str:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace").strip()[:500]
    if isinstance(document, dict):
        return str(document.get("error") or document.get("message") or document)[:500]
    return str(document)[:500]
