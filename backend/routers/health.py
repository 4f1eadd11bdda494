"""`/healthz` (the process answers), `/readyz` (it can serve: keys and database) and
`/metrics` (Prometheus text format, backend/metrics.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from backend import metrics
from backend.deps import BackendDep
from backend.models import Health, NotReady, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health()


@router.get("/readyz", response_model=Ready,
            responses={503: {"model": NotReady, "description": "What is missing"}})
def readyz(b: BackendDep) -> Ready | JSONResponse:
    problems = b.problems()
    if problems:
        return JSONResponse(NotReady(problems=problems).model_dump(), status_code=503)
    return Ready(mode="sandbox" if b.settings.sandbox_mode else "live")


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
