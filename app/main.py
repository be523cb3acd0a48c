"""The app factory: assembles routers, middleware and error mapping; the lifespan loads the models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from app.body_limit import BodyLimitMiddleware
from app.errors import install_error_handlers
from app.manager import ModelManager, SlotPlan
from app.routers import catalog, classify, detect, health, stylize
from app.settings import Settings
from app.store import ArtifactStore, open_object_store

log = logging.getLogger("deepcanvas")

DESCRIPTION = """Face detection (YOLOv5s), face classification (a compact CNN) and style transfer
(AdaIN, and classical neural style transfer) over HTTP. Errors are JSON: `{"detail": "..."}`."""


def open_artifact_store(settings: Settings) -> ArtifactStore:
    objects = open_object_store(settings.store, settings.s3_endpoint_url, settings.s3_region, settings.store_timeout_s)
    return ArtifactStore(objects, settings.cache_dir)


def build_manager(settings: Settings, plans: list[SlotPlan] | None = None) -> ModelManager:
    from app.model_plans import default_plans

    return ModelManager(settings, open_artifact_store(settings), plans or default_plans())


def _configure_torch(settings: Settings) -> None:
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)


def create_app(settings: Settings | None = None, plans: list[SlotPlan] | None = None) -> FastAPI:
    """A new app; nothing heavy happens until its lifespan starts."""
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_torch(settings)
        manager = build_manager(settings, plans)
        app.state.manager = manager
        # Load in the background: /healthz answers at once, /readyz turns 200 when all are loaded.
        loading = asyncio.create_task(manager.load_all(), name="load-models")
        try:
            yield
        finally:
            loading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loading
            manager.close()

    app = FastAPI(title="DeepCanvas", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=lambda: settings.max_upload_bytes)
    for module in (health, detect, classify, stylize, catalog):
        app.include_router(module.router)
    return app
