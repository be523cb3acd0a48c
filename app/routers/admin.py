"""Authenticated operations: runtime parameters and model versions."""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request, Response
from starlette.requests import parse_options_header

from app.deps import ActiveModelsDep, ManagerDep, ParamsServiceDep, SettingsDep
from app.errors import Forbidden, InvalidParameter, NotFound, Unauthorized, UnsupportedMediaType
from app.forms import check_form, guard
from app.runtime import parse_if_match
from app.schemas import ActivateRequest, ActivateResponse, ParamsDocument
from app.settings import Role
from deepcanvas.schemas import SAFE_NAME

SELF_DECLARED = "self-declared"
ADMIN_USER_DESCRIPTION = (
    "A name for the audit log. Not verified: anyone holding the admin token may send any name, so it is recorded "
    f"as 'NAME ({SELF_DECLARED}; admin@ADDRESS)'. Without it the audit log names the caller's address."
)


@guard
async def require_admin(
    request: Request,
    settings: SettingsDep,
    x_admin_user: Annotated[str | None, Header(description=ADMIN_USER_DESCRIPTION)] = None,
) -> str:
    """The caller's identity for the audit log; 404 when admin is off, 401/403 for a missing/wrong token, and only
    then the form's checks (``app.forms.guard``)."""
    if not settings.admin_token:
        raise NotFound("Not Found")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("admin routes need 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(token.encode(), settings.admin_token.get_secret_value().encode()):
        raise Forbidden("invalid admin token")
    # The token is shared: what it proves is "an admin at this address"; a name sent with it is only a claim.
    address = f"admin@{request.client.host if request.client else 'unknown'}"
    declared = " ".join((x_admin_user or "").split())[:64]
    await check_form(request)
    return f"{declared} ({SELF_DECLARED}; {address})" if declared else address


AdminDep = Annotated[str, Depends(require_admin)]


def json_body(request: Request, who: AdminDep) -> None:
    """415 for a body that is not declared JSON: FastAPI reads it as no object at all, and its 422 said the valid
    JSON object sent as text/plain was "not a valid dictionary". After the admin check (``who``, solved once per
    request): without a token the routes answer 401, and without admin they do not exist, whatever the body."""
    media_type = parse_options_header(request.headers.get("content-type"))[0].decode("latin-1")  # as forms read it
    kind, _, subtype = media_type.partition("/")
    if not (kind == "application" and (subtype == "json" or subtype.endswith("+json"))):  # what FastAPI parses
        raise UnsupportedMediaType(f"send the body as application/json, not {media_type or 'without a content type'}")


JsonBody = Depends(json_body)
router = APIRouter(prefix="/admin", tags=["admin"])


def _params_response(document: ParamsDocument, response: Response) -> dict[str, Any]:
    response.headers["ETag"] = document.etag
    return document.model_dump(mode="json")


@router.get("/params")
async def get_params(who: AdminDep, params: ParamsServiceDep, response: Response) -> dict[str, Any]:
    """The runtime parameters and their version (also the ETag to send back in If-Match)."""
    await params.refresh()
    return _params_response(params.document, response)


PATCH_DESCRIPTION = f"""Change some parameters; the answer is the new document and its ETag.

- **If-Match** is required (428 without it): the ETag of GET /admin/params, as it came (`"3"`), or `*` for
  whatever version is current. 409 when the parameters changed since that ETag; 400 when If-Match is not an ETag.
- Values are checked strictly: `true` or `"5"` is no number (422 naming the field), nor is `NaN`; an integer is a
  valid number. The body is `application/json` (415 otherwise).
  A key given twice is refused (422).
- A patch that changes nothing (`{{}}`) writes nothing: the answer is the current document and ETag.
- **X-Admin-User** names who changed them in the audit log and `updated_by`. It is {SELF_DECLARED}, not verified,
  and recorded as such: `NAME ({SELF_DECLARED}; admin@ADDRESS)`."""


def _refuse_not_finite(constant: str) -> float:
    """``json.loads`` takes NaN and Infinity, which JSON does not have; a parameter is a finite number."""
    raise InvalidParameter(f"the patch holds {constant}, which is not a finite number; parameters take finite numbers")


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members; a name given twice is an error (``json.loads`` would keep the last silently)."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise InvalidParameter(f"{name}: given more than once in the patch; send each parameter once")
        seen.add(name)
    return dict(pairs)


@router.patch("/params", description=PATCH_DESCRIPTION, dependencies=[JsonBody])
async def patch_params(
    who: AdminDep,
    params: ParamsServiceDep,
    request: Request,
    response: Response,
    patch: Annotated[dict[str, Any], Body(examples=[{"detector_conf": 0.4}])],
    if_match: Annotated[str | None, Header(description="The ETag of GET /admin/params, or *")] = None,
) -> dict[str, Any]:
    """Change some parameters (the OpenAPI page's text is ``PATCH_DESCRIPTION``)."""
    versions = parse_if_match(if_match)
    # FastAPI parsed it: valid JSON, or NaN and Infinity, which Python's parser takes
    json.loads(await request.body(), object_pairs_hook=_refuse_repeated_keys, parse_constant=_refuse_not_finite)
    document = await params.update(patch, versions, who)
    return _params_response(document, response)


def _role(manager: ManagerDep, name: str) -> Role:
    role = manager.role_of(name)
    if role is None:
        raise NotFound(f"no configured model is named {name!r}")
    return role


@router.post("/models/{name}/activate", response_model=ActivateResponse, dependencies=[JsonBody])
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
