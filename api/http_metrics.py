"""Request counts and latency per route template, for Prometheus."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

REQUESTS = Counter("houqin_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("houqin_http_request_seconds", "HTTP request latency", ["method", "route"])


async def record_request(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    # The route template, not the raw path, so /rooms/D1-101 and /rooms/D1-102 share one series.
    route = getattr(request.scope.get("route"), "path", "unmatched")
    REQUESTS.labels(request.method, route, str(response.status_code)).inc()
    LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
    return response
