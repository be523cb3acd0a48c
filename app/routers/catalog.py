"""GET /styles and GET /models: what the service can do right now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from app import services
from app.deps import ManagerDep, SettingsDep
from app.schemas import ERROR_RESPONSES, ModelsResponse, StylesResponse

router = APIRouter(tags=["catalog"])


@router.get("/styles", response_model=StylesResponse, responses=ERROR_RESPONSES)
async def list_styles(manager: ManagerDep, settings: SettingsDep) -> StylesResponse:
    """The style gallery (names usable as ``style_name`` in POST /stylize) and whether method=nst runs here."""
    return services.list_styles(manager, settings)


@router.get(
    "/styles/{name}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **ERROR_RESPONSES},
)
async def style_image(
    manager: ManagerDep, name: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
) -> Response:
    """A gallery style's image (JPEG)."""
    data = services.style_image(manager, name)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/models", response_model=ModelsResponse)
async def list_models(manager: ManagerDep) -> ModelsResponse:
    """Loaded models: names, versions, tasks, architectures, metrics and provenance."""
    return services.list_models(manager)
