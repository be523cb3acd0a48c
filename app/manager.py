"""The model manager: fetches artifacts from the store, builds and warms predictors, runs them safely.

Each loaded model lives in a ``ModelSlot`` that owns one worker thread, so a predictor instance is
never used by two threads at once, and a bounded count of waiting calls, so overload answers 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.errors import ModelNotReady, Overloaded
from app.settings import Role, Settings
from app.store import ArtifactStore
from app.store.objects import StoreUnavailable
from models.artifact import ArtifactError, Manifest

log = logging.getLogger("deepcanvas.models")
R = TypeVar("R")
Builder = Callable[[Path, Manifest, str], Any]
State = Literal["loading", "ready", "failed"]


@dataclass
class ModelSlot:
    """One predictor, the single thread allowed to use it, and its bounded waiting count."""

    name: str
    manifest: Manifest
    predictor: Any
    queue_size: int
    load_seconds: float = 0.0
    pending: int = 0
    executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")

    async def run(self, call: Callable[[Any], R]) -> R:
        """Run ``call(predictor)`` on this slot's thread; 503 when ``queue_size`` calls already wait."""
        if self.pending >= self.queue_size:
            raise Overloaded(f"{self.name} is busy: {self.pending} requests are waiting; retry shortly")
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, call, self.predictor)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class RoleStatus:
    state: State = "loading"
    name: str = ""
    ref: str = ""
    version: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class SlotPlan:
    """Which slot a role's artifact feeds, and how to build the slot's predictor."""

    slot: str
    role: Role
    build: Builder


class ModelManager:
    """Loads every configured model at start-up and hands out ready slots."""

    def __init__(self, settings: Settings, store: ArtifactStore, plans: list[SlotPlan]) -> None:
        self.settings = settings
        self.store = store
        self.plans = plans
        self.slots: dict[str, ModelSlot] = {}
        self.status: dict[Role, RoleStatus] = {
            role: RoleStatus(name=name, ref=ref) for role, (name, ref) in settings.model_refs.items()
        }

    @property
    def ready(self) -> bool:
        return all(s.state == "ready" for s in self.status.values())

    def slot(self, name: str) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            raise ModelNotReady(f"model {name!r} is not loaded yet; retry shortly")
        return slot

    async def load_all(self) -> None:
        """Load each configured role in turn; a failure marks that role failed and leaves others loading."""
        for role in self.status:
            await self.load_role(role)

    async def load_role(self, role: Role) -> None:
        status = self.status[role]
        status.state, status.detail = "loading", None
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(StoreUnavailable),
                stop=stop_after_attempt(self.settings.store_retries + 1),
                wait=wait_exponential(multiplier=0.5, max=30),
                reraise=True,
            ):
                with attempt:
                    slots = await asyncio.to_thread(self._build_role, role)
        except (ArtifactError, ValueError, RuntimeError, OSError) as error:
            status.state, status.detail = "failed", str(error)
            log.error("model %s (%s:%s) refused: %s", role, status.name, status.ref, error)
            return
        old = {name: self.slots.get(name) for name in slots}
        self.slots.update(slots)  # one dict update: requests see either all old or all new slots
        for previous in old.values():
            if previous is not None:
                previous.close()
        first = next(iter(slots.values()))
        status.state, status.version = "ready", first.manifest.version
        log.info("model %s ready: %s/%s in %.2fs", role, status.name, status.version, first.load_seconds)

    def _build_role(self, role: Role) -> dict[str, ModelSlot]:
        started = time.perf_counter()
        name, ref = self.settings.model_refs[role]
        folder, manifest = self.store.fetch(name, ref)
        slots = {}
        for plan in (p for p in self.plans if p.role == role):
            predictor = plan.build(folder, manifest, self.settings.device)
            if self.settings.warmup and hasattr(predictor, "warmup"):
                predictor.warmup()
            slots[plan.slot] = ModelSlot(plan.slot, manifest, predictor, self.settings.queue_size)
        for slot in slots.values():
            slot.load_seconds = time.perf_counter() - started
        return slots

    def describe(self) -> Mapping[Role, RoleStatus]:
        return self.status

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()
