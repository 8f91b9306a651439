"""Request counts and latency per route template, for Prometheus.

A plain ASGI middleware rather than Starlette's ``BaseHTTPMiddleware``: that one runs every request in a
task group of its own and streams the response through a queue, which costs more than the endpoint of a
payment notification does."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("houqin_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("houqin_http_request_seconds", "HTTP request latency", ["method", "route"])


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The route template, not the raw path, so /rooms/D1-101 and /rooms/D1-102 share one series.
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
