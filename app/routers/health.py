"""Operations endpoints: GET /healthz, GET /readyz and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from app.deps import ManagerDep
from app.errors import NotFound
from app.schemas import Health, Readiness, RoleState

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(manager: ManagerDep, request: Request) -> JSONResponse:
    """200 when every configured model is loaded; 503 with each model's state otherwise or while shutting down."""
    states = {
        role: RoleState(name=s.name, ref=s.ref, state=s.state, version=s.version, detail=s.detail)
        for role, s in manager.describe().items()
    }
    draining = request.app.state.gate.draining
    body = Readiness(ready=manager.ready and not draining, draining=draining, models=states)
    headers = None if body.ready else {"Retry-After": "5"}
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503, headers=headers)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, at the path spelt plainly.

    The load balancer keeps /metrics off the public listener by its path as sent, and the server decodes
    %-escapes before routing: ``/%6detrics`` would have reached this past the rule. So only the plain spelling
    answers here (the scrape inside the network sends it), any other is a 404.
    """
    plain = (request.scope.get("root_path", "") + "/metrics").encode()
    if request.scope.get("raw_path", plain).split(b"?")[0] != plain:
        raise NotFound("Not Found")
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
