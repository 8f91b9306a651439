"""Liveness, readiness and Prometheus metrics. Public: they reveal no campus data, only health."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from api.deps import ReadinessDep
from api.schemas import CheckOut, ReadinessOut

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up (public)")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadinessOut, summary="Every dependency answers (public)")
async def readyz(readiness: ReadinessDep) -> JSONResponse:
    results = await readiness.run()
    body = ReadinessOut(
        ready=all(result.ok for result in results),
        checks=[CheckOut(name=r.name, ok=r.ok, detail=r.detail, seconds=round(r.seconds, 4)) for r in results],
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", summary="Prometheus metrics (public)", response_class=Response)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
