"""The app factory: assembles routers, middleware and error mapping; the lifespan loads the models."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.auth import ApiKeyMiddleware, ApiKeys, document_api_keys
from app.body_limit import BodyLimitMiddleware
from app.disconnect import CancelOnDisconnect
from app.errors import document_errors_as_strings, install_error_handlers
from app.fastpath import FAST_FORM_PATHS, FormFastPath
from app.forms import form_checks
from app.head_requests import HeadAsGet
from app.identities.database import open_engine
from app.identities.gallery import IdentityGallery
from app.identities.service import embedder_version
from app.lifecycle import DrainMiddleware, ShutdownGate
from app.manager import ModelManager, SlotPlan
from app.routers import admin, catalog, classify, detect, docs, health, identify, identities, stylize, web
from app.runtime import ActiveModels, ParamsService, adopt_stored_versions, poll_store
from app.services import LoadFollowUps
from app.settings import Settings
from app.store import ArtifactStore, open_object_store
from app.telemetry import EmfEmitter, ServiceMetrics, TelemetryMiddleware

log = logging.getLogger("deepcanvas")

# CORS (with ``cors_origins``): what a page on another origin may send, and which answer headers it may read.
CORS_METHODS = ("GET", "POST", "PATCH", "DELETE")
CORS_REQUEST_HEADERS = ("Authorization", "Content-Type", "If-Match", "X-Request-ID", "X-Admin-User")
CORS_EXPOSED_HEADERS = (
    "Server-Timing",
    "X-Request-ID",
    "X-Model-Name",
    "X-Model-Version",
    "X-NST-Steps",
    "Retry-After",
    "ETag",
)

DESCRIPTION = """Face detection (the Ultra-Light RFB face detector), face classification (a compact CNN), face
recognition against an enrolment gallery (dlib's ResNet descriptors) and style transfer (AdaIN, and classical
neural style transfer) over HTTP; `GET /models` names the model versions that answer. Errors are JSON:
`{"detail": "...", "code": "..."}`, the detail for people and the code for programs (`overloaded`, `model_not_ready`,
`invalid_image`...)."""


def open_artifact_store(settings: Settings) -> ArtifactStore:
    objects = open_object_store(settings.store, settings.s3_endpoint_url, settings.s3_region, settings.store_timeout_s)
    return ArtifactStore(objects, settings.cache_dir)


def _configure_torch(settings: Settings) -> None:
    if settings.torch_threads and settings.uses_torch:  # a service may run without torch installed
        import torch

        torch.set_num_threads(settings.torch_threads)


def private_folder(path: Path) -> Path:
    """``path`` created closed to other users (0700), or, when it exists, checked to be ours and closed.

    The cache holds the verified models and, by default, the identity database (names and face descriptors): a
    folder another user owns could have its files swapped after they were checked, so it stops the start.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise ValueError(
            f"cache_dir {path} belongs to another user (uid {info.st_uid}): set DEEPCANVAS_CACHE_DIR to a folder "
            "of this user's"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def create_app(settings: Settings | None = None, plans: list[SlotPlan] | None = None) -> FastAPI:
    """A new app; nothing heavy happens until its lifespan starts."""
    from app.model_plans import default_plans

    settings = settings or Settings()
    private_folder(settings.cache_dir)
    store = open_artifact_store(settings)
    params = ParamsService(settings, store.objects)
    gate = ShutdownGate()
    manager = ModelManager(
        settings,
        store,
        plans or default_plans(settings),
        queue_limit=lambda: params.params.queue_size,
        batch_limits=lambda: (params.params.batch_max_size, params.params.batch_max_wait_ms / 1000),
        alone=lambda: gate.inflight <= 1,
    )
    active = ActiveModels(manager, store.objects)
    follow_ups = LoadFollowUps(manager, lambda: params.params.stylize_max_side)
    gallery = IdentityGallery(open_engine(settings.identity_database_url))  # connects on first use

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_torch(settings)
        tasks = [asyncio.create_task(_start(params, active, follow_ups), name="load-models")]
        poll = poll_store(params, active, settings.params_poll_s, follow_ups.run)
        tasks.append(asyncio.create_task(poll, name="poll-store"))
        for task in tasks:
            task.add_done_callback(_log_failure)
        sync = gallery.keep_in_sync(lambda: embedder_version(manager), settings.identity_poll_s)
        tasks.append(asyncio.create_task(sync, name="sync-identities"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            manager.close()
            gallery.close()

    app = FastAPI(
        title="DeepCanvas",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(form_checks)],
        docs_url=None,  # app.routers.docs serves it, without a CDN
        redoc_url=None,
        # "/detect/" is a 404, not a 307 to a URL built from the client's Host header, after which
        # a client must upload the photo again
        redirect_slashes=False,
    )
    app.state.settings, app.state.manager, app.state.params, app.state.active = settings, manager, params, active
    app.state.gallery = gallery
    app.state.gate = gate
    app.state.metrics = ServiceMetrics(lambda: manager, lambda: params.document.version)
    install_error_handlers(app)
    _document_error_bodies(app, keyed=settings.api_keys is not None)
    # innermost: the photo routes' everyday request, served with the routes' own fields and handlers
    app.add_middleware(FormFastPath, paths=FAST_FORM_PATHS if settings.lean_forms else frozenset())
    app.add_middleware(CancelOnDisconnect)  # next: it sees the body's end through the body limit
    app.add_middleware(
        BodyLimitMiddleware, limit=lambda: params.params.max_upload_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(HeadAsGet)  # HEAD on every GET route, outside the routes (and the OpenAPI page)
    if settings.api_keys:  # before the body is read, inside telemetry (which records the refusals)
        app.add_middleware(ApiKeyMiddleware, keys=ApiKeys.of(settings.api_keys))
    app.add_middleware(DrainMiddleware, gate=app.state.gate)
    emf = EmfEmitter(settings.emf_namespace, settings.service_name) if settings.emf_enabled else None
    app.add_middleware(TelemetryMiddleware, metrics=app.state.metrics, emf=emf)
    if settings.cors_origins:  # outermost: errors from the layers inside (413, 503) carry the headers too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    for module in (health, detect, classify, identify, identities, stylize, catalog, admin, web, docs):
        app.include_router(module.router)
    app.mount(docs.ASSETS_PATH, docs.SwaggerAssets(), name="swagger-ui")
    return app


def _document_error_bodies(app: FastAPI, keyed: bool) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = document_errors_as_strings(generate())
            app.openapi_schema = document_api_keys(schema) if keyed else schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _log_failure(task: asyncio.Task[None]) -> None:
    """A background task that ended on an error says so: a silent end left models "loading" with no line."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s failed: %s", task.get_name(), error, exc_info=error)


async def _start(params: ParamsService, active: ActiveModels, follow_ups: LoadFollowUps) -> None:
    """Parameters and desired versions from the store first (when reachable), then every model."""
    try:
        await params.refresh()
    except Exception as error:  # the store may be away at start: the models' own loads retry and say why
        log.warning("could not read the store's parameters at start: %s", error)
    try:  # apart: malformed parameters must not make this replica load other versions than the others serve
        await adopt_stored_versions(active)
    except Exception as error:
        log.warning("could not read the store's chosen model versions at start: %s", error)
    await active.manager.load_all()
    await follow_ups.run()  # deferred warm-ups, gallery statistics: models loaded later get theirs at a poll
    if active.manager.settings.freeze_heap:
        settle_heap()


def settle_heap() -> int:
    """Collect, then move every live object out of the collector's sight; returns how many were frozen.

    What start-up loaded (torch, the engines, the networks, the gallery) lives as long as the process; a full
    collection walking it stalled /classify at 16 clients (p99 about 5× its median, 1.5× with the freeze).
    A model swap unfreezes (``ModelManager.activate``) so that the replaced predictors can still be collected.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
