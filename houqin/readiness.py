"""Readiness: named checks that ``/readyz`` runs; each component registers what it depends on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiomqtt
import httpx

from houqin.settings import InfluxSettings

Check = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


class Readiness:
    """A registry of readiness checks, each run with a timeout; one failing check makes the process unready."""

    def __init__(self, timeout: float = 3.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, Check] = {}

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        return list(self._checks)

    async def run(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run_one(name, check) for name, check in self._checks.items())))

    async def _run_one(self, name: str, check: Check) -> CheckResult:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return CheckResult(name, False, f"no answer within {self.timeout:g} s", time.perf_counter() - started)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
            return CheckResult(name, False, detail, time.perf_counter() - started)
        return CheckResult(name, True, "ok", time.perf_counter() - started)


def mqtt_broker_check(url: str) -> Check:
    """Connects to the broker and disconnects: the broker is up and accepts houqin's credentials."""
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise ValueError(f"MQTT URL must look like mqtt://user:password@host:1883, got {parts.scheme}://...")
    port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    async def check() -> None:
        client = aiomqtt.Client(
            parts.hostname or "",
            port,
            username=parts.username,
            password=parts.password,
            tls_params=aiomqtt.TLSParameters() if parts.scheme == "mqtts" else None,
            identifier=None,
            timeout=2,
        )
        async with client:
            pass

    return check


def influx_check(settings: InfluxSettings) -> Check:
    """InfluxDB answers ``/ping`` with 204 on 1.x, 2.x and 3.x."""
    url = settings.url.rstrip("/") + "/ping"

    async def check() -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(url)
        if response.status_code != 204:
            raise RuntimeError(f"/ping answered {response.status_code}")

    return check
