"""`/healthz` (the process answers) and `/readyz` (it can serve: keys and database)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

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
