"""GET /healthz (process alive) and GET /readyz (every configured model loaded)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.deps import ManagerDep
from app.schemas import Health, Readiness, RoleState

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(manager: ManagerDep) -> JSONResponse:
    """200 when every configured model is loaded; 503 with each model's state otherwise."""
    states = {
        role: RoleState(name=s.name, ref=s.ref, state=s.state, version=s.version, detail=s.detail)
        for role, s in manager.describe().items()
    }
    body = Readiness(ready=manager.ready, models=states)
    headers = None if body.ready else {"Retry-After": "5"}
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503, headers=headers)
