"""Authenticated operations: runtime parameters and model versions."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response

from app.deps import ActiveModelsDep, ManagerDep, ParamsServiceDep, SettingsDep
from app.errors import DeepCanvasError, NotFound
from app.runtime import parse_if_match
from app.schemas import ActivateRequest, ActivateResponse, ParamsDocument
from app.settings import Role
from deepcanvas.schemas import SAFE_NAME


class Unauthorized(DeepCanvasError):
    status = 401


class Forbidden(DeepCanvasError):
    status = 403


def require_admin(request: Request, settings: SettingsDep) -> str:
    """The caller's identity for the audit log; 404 when admin is off, 401/403 for a missing/wrong token."""
    if not settings.admin_token:
        raise NotFound("Not Found")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("admin routes need 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(token.encode(), settings.admin_token.get_secret_value().encode()):
        raise Forbidden("invalid admin token")
    client = request.client.host if request.client else "unknown"
    return request.headers.get("x-admin-user", f"admin@{client}")[:64]


AdminDep = Annotated[str, Depends(require_admin)]
router = APIRouter(prefix="/admin", tags=["admin"])


def _params_response(document: ParamsDocument, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = document.etag
    return document.model_dump(mode="json")


@router.get("/params")
async def get_params(who: AdminDep, params: ParamsServiceDep, response: Response) -> dict[str, Any]:
    """The runtime parameters and their version (also the ETag to send back in If-Match)."""
    await params.refresh()
    return _params_response(params.document, response)


@router.patch("/params")
async def patch_params(
    who: AdminDep,
    params: ParamsServiceDep,
    response: Response,
    patch: Annotated[dict[str, Any], Body(examples=[{"detector_conf": 0.4}])],
    if_match: Annotated[str | None, Header(description="The ETag of GET /admin/params")] = None,
) -> dict[str, Any]:
    """Change some parameters; 409 when someone changed them since your GET, 428 without If-Match."""
    document = await params.update(patch, parse_if_match(if_match), who)
    return _params_response(document, response)


def _role(manager: ManagerDep, name: str) -> Role:
    role = manager.role_of(name)
    if role is None:
        raise NotFound(f"no configured model is named {name!r}")
    return role


@router.post("/models/{name}/activate", response_model=ActivateResponse)
async def activate_model(
    who: AdminDep,
    manager: ManagerDep,
    active: ActiveModelsDep,
    name: Annotated[str, Path(pattern=SAFE_NAME)],
    request: ActivateRequest,
) -> ActivateResponse:
    """Load a version from the configured store, verify and warm it, then swap it in atomically."""
    role = _role(manager, name)
    version = await active.activate(role, request.version, who)
    return ActivateResponse(name=name, role=role, version=version, previous=manager.status[role].previous)


@router.post("/models/{name}/rollback", response_model=ActivateResponse)
async def rollback_model(
    who: AdminDep, manager: ManagerDep, active: ActiveModelsDep, name: Annotated[str, Path(pattern=SAFE_NAME)]
) -> ActivateResponse:
    """Activate the version that served before the last switch."""
    role = _role(manager, name)
    version = await active.rollback(role, who)
    return ActivateResponse(name=name, role=role, version=version, previous=manager.status[role].previous)
