"""A small InfluxDB 2 stand-in for the tests: the v2 write API in front of a real influxd 1.x.

No InfluxDB 2 can be installed here (Debian ships 1.x), so houqin's v2 path (influxdb-client's async
write API, token auth) is exercised end to end through this forwarder: ``POST /api/v2/write`` with
``Authorization: Token ...`` becomes influxd's ``POST /write?db=<bucket>``, and the answer is passed
back in the v2 shape. ``max_body`` makes it answer 413 to larger writes, as InfluxDB 2 does to bodies
over its limit.
"""

from __future__ import annotations

import httpx
from aiohttp import web

PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}


class InfluxV2Shim:
    def __init__(self, influx_url: str, token: str, org: str, max_body: int | None = None) -> None:
        self.influx_url = influx_url
        self.token = token
        self.org = org
        self.max_body = max_body
        self.writes = 0
        self.too_large = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_post("/api/v2/write", self._write)
        app.router.add_get("/ping", self._ping)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _write(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {self.token}":
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"}, status=401)
        if request.query.get("org") != self.org:
            return web.json_response({"code": "not found", "message": "organization not found"}, status=404)
        body = await request.read()
        if self.max_body is not None and len(body) > self.max_body:
            self.too_large += 1
            return web.json_response({"code": "request too large", "message": "body too large"}, status=413)
        params = {"db": request.query["bucket"], "precision": PRECISION[request.query.get("precision", "ns")]}
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{self.influx_url}/write", params=params, content=body)
        self.writes += 1
        if answer.status_code == 204:
            return web.Response(status=204)
        message = answer.json().get("error", answer.text) if answer.content else ""
        code = "invalid" if answer.status_code < 500 else "internal error"
        return web.json_response({"code": code, "message": message}, status=answer.status_code)
