"""Every dependency as an ``Annotated[..., Depends()]`` alias; tests override them on the app.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, and four
thread hops per request cost more than the lookups themselves (a tenth of the event loop's time under load).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.identities.gallery import IdentityGallery
from app.imaging import ImageLimits
from app.manager import ModelManager
from app.runtime import ActiveModels, ParamsService, RuntimeParams
from app.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


async def get_params_service(request: Request) -> ParamsService:
    service: ParamsService = request.app.state.params
    return service


async def get_active_models(request: Request) -> ActiveModels:
    active: ActiveModels = request.app.state.active
    return active


async def get_gallery(request: Request) -> IdentityGallery:
    gallery: IdentityGallery = request.app.state.gallery
    return gallery


async def get_params(service: Annotated[ParamsService, Depends(get_params_service)]) -> RuntimeParams:
    """The parameters in force for this request (one consistent snapshot)."""
    return service.params


async def get_image_limits(params: Annotated[RuntimeParams, Depends(get_params)]) -> ImageLimits:
    return ImageLimits(max_pixels=params.max_pixels, min_side=params.min_side)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ParamsServiceDep = Annotated[ParamsService, Depends(get_params_service)]
ActiveModelsDep = Annotated[ActiveModels, Depends(get_active_models)]
ParamsDep = Annotated[RuntimeParams, Depends(get_params)]
ImageLimitsDep = Annotated[ImageLimits, Depends(get_image_limits)]
GalleryDep = Annotated[IdentityGallery, Depends(get_gallery)]
