"""Every dependency as an ``Annotated[..., Depends()]`` alias; tests override them on the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.imaging import ImageLimits
from app.manager import ModelManager
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def get_image_limits(settings: Annotated[Settings, Depends(get_settings)]) -> ImageLimits:
    return ImageLimits(max_pixels=settings.max_pixels, min_side=settings.min_side)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ImageLimitsDep = Annotated[ImageLimits, Depends(get_image_limits)]
