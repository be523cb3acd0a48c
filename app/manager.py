"""The model manager: fetches artifacts from the store, builds and warms predictors, runs them safely.

Each loaded model lives in a ``ModelSlot`` that owns one worker thread, so a predictor instance is
never used by two threads at once, and a bounded count of waiting calls, so overload answers 503.
Switching versions builds the new slots aside and swaps them in one step: requests already holding
the old slot finish on it, and its thread ends once nothing refers to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from app.engines import EngineChoice
from app.errors import ModelNotReady, Overloaded
from app.log_once import ReasonsLogged
from app.request_ids import batch_request_id, current_request_id
from app.settings import OPTIONAL_ROLES, Role, Settings
from app.store import ArtifactStore
from app.store.objects import StoreUnavailable
from app.timings import record_phase
from models.artifact import ArtifactError, Manifest

log = logging.getLogger("deepcanvas.models")
R = TypeVar("R")
Builder = Callable[[Path, Manifest, str], Any]
State = Literal["loading", "ready", "failed", "absent"]
LOAD_ERRORS = (ArtifactError, ValueError, RuntimeError, OSError)
# A lone request runs a model this quick on the event loop itself: the hop to the slot's thread and back costs
# about 0.15 ms here (a 0.6 ms classifier call took 0.72 ms through the slot), and nobody waits on the loop.
INLINE_SECONDS = 0.002


class Inference(NamedTuple):
    """One model call a request ran: the slot that ran it and its artifact's name and version (one artifact may
    feed two slots: adain feeds ``style`` and ``nst``, whose calls take milliseconds and seconds), and its time."""

    slot: str
    model: str
    version: str
    seconds: float


# The inferences one request ran, read by telemetry after the response.
inferences: ContextVar[list[Inference] | None] = ContextVar("inferences", default=None)


@dataclass
class ModelSlot:
    """One predictor, the single thread allowed to use it, a bounded queue and a micro-batcher.

    ``predict(items)`` queues items; a batcher task hands everything waiting (up to the batch size) to
    ``predictor.predict`` in one call on the slot's thread, and routes each result to its caller.
    Under load, items that arrive while a batch runs form the next batch; when the slot was busy
    within the last ``max_wait``, the batcher also waits that long for more before it starts.

    A request the service serves alone (``alone()``), on an idle slot whose latest single call took at most
    ``INLINE_SECONDS``, runs on the event loop instead: no batch could form, and the two thread hops would
    be a tenth of its time. The slot's thread is idle then, so the predictor still runs on one thread at once.
    """

    name: str
    manifest: Manifest
    predictor: Any
    queue_limit: Callable[[], int]
    batch_limits: Callable[[], tuple[int, float]] = lambda: (1, 0.0)
    load_seconds: float = 0.0
    engine: EngineChoice | None = None
    alone: Callable[[], bool] = lambda: False
    job_seconds: Callable[[], float] | None = None  # the most one ``run`` job may take (NST: its time budget)
    pending: int = 0
    executor: ThreadPoolExecutor = field(init=False)
    # Each queued item, the future its caller awaits, and that caller's request id (for the batch's log lines).
    _waiting: deque[tuple[Any, asyncio.Future[Any], str | None]] = field(init=False, default_factory=deque)
    _batcher: asyncio.Task[None] | None = field(init=False, default=None)
    _last_batch_end: float = field(init=False, default=0.0)
    _last_batch_size: int = field(init=False, default=0)
    _jobs: int = field(init=False, default=0)  # work on the slot's thread (a batch, a ``run``, a warm-up)
    _single_seconds: float = field(init=False, default=float("inf"))  # the latest one-item call's time
    deferred_warm_up_tried: bool = field(init=False, default=False)  # by ``ModelManager.warm_deferred``
    # The ``run`` job on the thread: its token and when it began. One attribute, set and read whole (it is written
    # on the slot's thread and read on the loop's: two would be read half changed).
    _running: tuple[object, float] | None = field(init=False, default=None)
    # Each admitted ``run`` job not yet ended, by a token, in the order they run (one thread): its own bound in
    # seconds (the request's budget, at most ``job_seconds``), which a refusal's Retry-After adds up.
    _run_bounds: dict[object, float] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{self.name}")

    def _admit(self, count: int) -> None:
        limit = self.queue_limit()
        if self.pending and self.pending + count > limit:
            if self.job_seconds is None:
                raise Overloaded(f"{self.name} is busy: {self.pending} requests are waiting; retry shortly")
            job_seconds = self.job_seconds()
            free_in = self._free_in(job_seconds)
            refused = Overloaded(
                f"{self.name} is busy: {self.pending} running or waiting (each up to {job_seconds:g} s, or its "
                f"own shorter budget); retry in {free_in} s"
            )
            refused.retry_after = free_in
            raise refused
        self.pending += count

    def _free_in(self, job_seconds: float) -> int:
        """Whole seconds until the slot has room at the latest (a slot whose jobs are long, each bounded by its own
        budget, at most ``job_seconds``). One more fits once ``pending - limit + 1`` of the jobs it holds have
        ended, in the order they run: the first of them (what the running one may still take; its whole budget
        when none has begun) and the whole budget of each of the others. With a queue of 2, one running and one
        waiting, that is when the running one ends; a painting asked for 8 s makes room within 8 s, not 55."""
        bounds = list(self._run_bounds.values())
        running = self._running  # read once: the slot's thread may change it meanwhile
        began = running[1] if running is not None else None
        total = 0.0
        for index in range(max(1, self.pending - self.queue_limit() + 1)):
            bound = bounds[index] if index < len(bounds) else job_seconds
            if index == 0 and began is not None:
                bound = max(0.0, bound - (time.monotonic() - began))
            total += bound
        return max(1, math.ceil(total))

    async def run(self, call: Callable[[Any], R], seconds: float | None = None, stops_within: float | None = None) -> R:
        """Run ``call(predictor)`` alone on this slot's thread (for work that does not batch). ``seconds``: the
        most this job may take, when it is bounded tighter than ``job_seconds`` (a painting's own budget).
        ``stops_within``: when the caller leaves, the job ends within this many seconds (its caller stops it: a
        painting whose client left), so a refusal meanwhile asks for that wait, not what its budget had left."""
        self._admit(1)
        started = time.perf_counter()
        token = object()
        if self.job_seconds is not None:
            most = self.job_seconds()
            self._run_bounds[token] = most if seconds is None else min(seconds, most)

        def timed_from_its_start(predictor: Any) -> R:
            self._running = (token, time.monotonic())
            try:
                return call(predictor)
            finally:
                self._running = None

        try:
            result, seconds_taken = await self._on_thread(
                asyncio.get_running_loop(), timed_from_its_start, items=1, token=token
            )
        except asyncio.CancelledError:
            # A job not begun was cancelled with its caller and is gone; one running goes on until it stops.
            if stops_within is not None and token in self._run_bounds:
                running = self._running
                ran = time.monotonic() - running[1] if running is not None and running[0] is token else 0.0
                self._run_bounds[token] = min(self._run_bounds[token], ran + stops_within)
            raise
        _record(self.name, self.manifest, seconds_taken)
        record_phase("queue", max(0.0, time.perf_counter() - started - seconds_taken))
        return result

    async def predict(self, items: list[Any]) -> list[Any]:
        """Results of ``predictor.predict`` for ``items``, in order, computed in shared micro-batches."""
        if not items:
            return []
        if self._inline(items):
            return self._predict_inline(items)
        self._admit(len(items))
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Any]] = [loop.create_future() for _ in items]
        request_id = current_request_id.get()
        self._waiting.extend((item, future, request_id) for item, future in zip(items, futures, strict=True))
        if self._batcher is None or self._batcher.done():
            # The batcher ends when the queue is empty, so a slot swapped out is never kept alive by it. It serves
            # every caller, not the one that started it: an empty context, or whatever it logged would carry that
            # request's id alone (and a phase or inference recorded there would land in its records); each batch
            # names all of its requests instead (``_drain_queue``). Each caller records its own inference and
            # queue time below, in its own context, once its future resolves.
            self._batcher = asyncio.create_task(self._drain_queue(), name=f"batcher-{self.name}", context=Context())
        started = time.perf_counter()
        done = await asyncio.gather(*futures)  # the items leave ``pending`` when their batch ends or is skipped
        inference = max(seconds for _, seconds in done)
        _record(self.name, self.manifest, inference)
        record_phase("queue", max(0.0, time.perf_counter() - started - inference))
        return [result for result, _ in done]

    def _inline(self, items: list[Any]) -> bool:
        idle = not (self._waiting or self._jobs or self.pending)
        return len(items) == 1 and idle and self._single_seconds <= INLINE_SECONDS and self.alone()

    def _predict_inline(self, items: list[Any]) -> list[Any]:
        results, seconds = _timed(_predict(items), self.predictor)
        assert len(results) == 1, f"{self.name} returned {len(results)} results for 1 item"
        self._single_seconds = seconds
        _record(self.name, self.manifest, seconds)
        record_phase("queue", 0.0)
        return list(results)

    async def on_thread(self, call: Callable[[Any], R]) -> R:
        """``call(predictor)`` on the slot's thread, untimed and outside the queue (a warm-up)."""
        return (await self._on_thread(asyncio.get_running_loop(), call, items=0))[0]

    def _on_thread(
        self, loop: asyncio.AbstractEventLoop, call: Callable[[Any], R], items: int, token: object = None
    ) -> asyncio.Future[tuple[R, float]]:
        """``call(predictor)`` on the slot's thread, timed. Until the job itself ends, the slot counts it (nothing
        runs inline meanwhile) and its ``items`` as pending, also when every caller waiting for it has left: a
        job that has started runs to its end, and admission must not count it gone before that.

        The job runs in a copy of the submitter's context (as ``asyncio.to_thread`` would; an executor's ``submit``
        does not), so the lines it logs carry the request id of the request it works for (a ``run``), or the
        batch's ids (the batcher's context), and none for a warm-up at start."""
        self._jobs += 1
        job = self.executor.submit(copy_context().run, _timed, call, self.predictor)

        def ended(_: object) -> None:  # on the slot's thread, or on the loop when the job never started
            with contextlib.suppress(RuntimeError):  # the loop closed at shutdown: nothing to count any more
                loop.call_soon_threadsafe(self._ended, items, token)

        job.add_done_callback(ended)  # before wrap_future's own callback: counted before a caller resumes
        return asyncio.wrap_future(job, loop=loop)

    def _ended(self, items: int, token: object = None) -> None:
        self._jobs -= 1
        self.pending -= items
        self._run_bounds.pop(token, None)

    async def _drain_queue(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            size, wait = self.batch_limits()
            if len(self._waiting) < size and wait > 0 and self._others_likely(wait):
                await asyncio.sleep(wait)  # busy with several callers lately: let more join this batch
            taken = [self._waiting.popleft() for _ in range(min(size, len(self._waiting)))]
            live = [entry for entry in taken if not entry[1].done()]
            batch = [(item, future) for item, future, _ in live]
            self.pending -= len(taken) - len(batch)  # the items of callers that left before their batch began
            if batch:
                # for the batch's work only: the ids of the requests it serves, "a,b" (``batch_request_id``)
                token = current_request_id.set(batch_request_id(request_id for *_, request_id in live))
                try:
                    await self._run_batch(loop, batch)
                finally:
                    current_request_id.reset(token)
            self._last_batch_end, self._last_batch_size = time.monotonic(), len(batch)

    def _others_likely(self, wait: float) -> bool:
        """Whether waiting may fill the batch: the slot was busy just now, with more than one caller.

        A lone caller in a closed loop is always "busy lately", but nobody would join its batch: waiting
        would only add to its latency.
        """
        concurrent = len(self._waiting) > 1 or self._last_batch_size > 1
        return concurrent and time.monotonic() - self._last_batch_end < wait

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results, seconds = await self._on_thread(loop, _predict(items), items=len(items))
            assert len(results) == len(items), f"{self.name} returned {len(results)} results for {len(items)} items"
            if len(items) == 1:
                self._single_seconds = seconds
        except Exception as error:  # the callers get the predictor's error; the batcher keeps running
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result((result, seconds))

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)


def describe_engine(engine: EngineChoice | None) -> str:
    if engine is None:
        return "an engine its plan does not name"
    precision = f" {engine.precision}" if engine.precision != "none" else ""
    return f"{engine.engine}{precision} ({engine.reason})"


def _never() -> bool:
    return False


def _lowest(*limits: Callable[[], int]) -> Callable[[], int]:
    return lambda: min(limit() for limit in limits)


def _predict(items: list[Any]) -> Callable[[Any], list[Any]]:
    return lambda predictor: predictor.predict(items)


def _record(slot: str, manifest: Manifest, seconds: float) -> None:
    record = inferences.get()
    if record is not None:
        record.append(Inference(slot, manifest.name, manifest.version, seconds))


def _timed(call: Callable[[Any], R], predictor: Any) -> tuple[R, float]:
    started = time.perf_counter()
    return call(predictor), time.perf_counter() - started


class ModelAbsent(ArtifactError):
    """An optional role's model is not in the store at all (the service runs without it)."""


@dataclass
class RoleStatus:
    state: State = "loading"
    name: str = ""
    ref: str = ""
    version: str | None = None
    detail: str | None = None
    previous: str | None = None


@dataclass(frozen=True)
class SlotPlan:
    """Which slot a role's artifact feeds, how to build the slot's predictor, and on which engine.

    ``engine(manifest)`` says which engine ``build`` will use for that artifact, and why (None: not known);
    ``warmup`` false skips the predictor's warm-up at load (a slot whose first call may pay for it instead);
    ``inline``: a call costs about the same whatever the photo (a fixed input size), so a quick one may run on
    the event loop for a lone request (``ModelSlot``); a model whose cost grows with the photo never does.
    """

    slot: str
    role: Role
    build: Builder
    engine: Callable[[Manifest], EngineChoice] | None = None
    warmup: bool = True
    inline: bool = False
    queue_limit: Callable[[], int] | None = None  # the slot's own bound, below the runtime parameter queue_size
    job_seconds: Callable[[], float] | None = None  # the most one job may take: a refusal says when to come back


class ModelManager:
    """Loads every configured model at start-up, hands out ready slots, switches versions."""

    def __init__(
        self,
        settings: Settings,
        store: ArtifactStore,
        plans: list[SlotPlan],
        queue_limit: Callable[[], int],
        batch_limits: Callable[[], tuple[int, float]] = lambda: (1, 0.0),
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.alone = alone  # whether the request asking is the only one the service is serving
        self.store = store
        self.plans = plans
        self.queue_limit = queue_limit
        self.batch_limits = batch_limits  # the runtime parameters' limits: they cap each slot's own
        self.slots: dict[str, ModelSlot] = {}
        self.status: dict[Role, RoleStatus] = {
            role: RoleStatus(name=name, ref=ref) for role, (name, ref) in settings.model_refs.items()
        }
        self._locks: dict[Role, asyncio.Lock] = {role: asyncio.Lock() for role in self.status}
        self._refusals = ReasonsLogged(log)  # each role's load errors, logged once per reason

    @property
    def ready(self) -> bool:
        """Every role loaded; an optional role whose model the store lacks does not count."""
        return all(s.state in ("ready", "absent") for s in self.status.values())

    def slot(self, name: str) -> ModelSlot:
        slot = self.slots.get(name)
        if slot is None:
            raise ModelNotReady(f"model {name!r} is not loaded yet; retry shortly")
        return slot

    def has_plan(self, slot: str) -> bool:
        """Whether this service builds ``slot`` at all (a slot planned but not loaded yet is not ready)."""
        return any(plan.slot == slot for plan in self.plans)

    def slot_batch_limits(self, slot: str) -> tuple[int, float]:
        """The slot's (batch size, wait in s): its settings' limits, capped by the runtime parameters'."""
        size, wait = self.batch_limits()
        own = self.settings.batch_limits.get(slot)
        return (min(size, own[0]), min(wait, own[1] / 1000)) if own else (size, wait)

    def role_of(self, model_name: str) -> Role | None:
        return next((role for role, s in self.status.items() if s.name == model_name), None)

    async def load_all(self) -> None:
        """Load each configured role in turn; a failure marks that role failed, others still load."""
        for role in self.status:
            with contextlib.suppress(*LOAD_ERRORS):  # recorded in the role's status and logged by activate
                await self.activate(role, self.status[role].ref, retry=True)

    async def retry_failed(self) -> None:
        """Try again every role that never loaded (its artifact may have been published since)."""
        for role, status in self.status.items():
            if status.state in ("failed", "absent"):
                with contextlib.suppress(*LOAD_ERRORS):
                    await self.activate(role, status.ref)

    async def activate(
        self,
        role: Role,
        ref: str,
        retry: bool = False,
        commit: Callable[[str], Awaitable[None]] | None = None,
        wanted: Callable[[], bool] | None = None,
    ) -> str:
        """Load ``ref`` for ``role`` and swap it in; on failure the serving version stays. Returns the version.

        ``commit(version)`` runs once the new version is built and warm, just before the swap: when it raises,
        the new slots are dropped and its error propagates, so nothing changed here (``ActiveModels`` records the
        version there, and a version no other replica would load must not serve on this one).
        ``wanted()``, asked once no other activation of the role is under way: False, and nothing is loaded (the
        serving version is returned, "" when none): what a poll read before an activation here may be stale after.
        """
        status = self.status[role]
        async with self._locks[role]:
            if wanted is not None and not wanted():
                return status.version or ""
            try:
                slots = (
                    await self._build_with_retries(role, ref)
                    if retry
                    else await asyncio.to_thread(self._build_role, role, ref)
                )
            except LOAD_ERRORS as error:
                was = status.state
                if status.version is None:
                    status.state = "absent" if isinstance(error, ModelAbsent) else "failed"
                status.detail = f"{status.name}:{ref}: {error}"
                if not isinstance(error, ModelAbsent):
                    # once per reason: a role retried at every poll would log the same error every 10 s for good
                    self._refusals.log(
                        role,
                        status.detail,
                        logging.ERROR,
                        "model %s (%s:%s) refused: %s",
                        role,
                        status.name,
                        ref,
                        error,
                    )
                elif was != "absent":
                    log.info("model %s (%s) is not in the store; running without it", role, status.name)
                raise
            if commit is not None:
                try:
                    await commit(next(iter(slots.values())).manifest.version)
                except BaseException:
                    for slot in slots.values():
                        slot.close()
                    raise
            replaced = any(slot in self.slots for slot in slots)
            self.slots.update(slots)  # one dict update: a request sees either the old or the new slots
            if replaced and gc.get_freeze_count():
                # the start-up freeze (app.main) would keep the replaced predictors' reference cycles forever
                gc.unfreeze()
            first = next(iter(slots.values()))
            if status.version != first.manifest.version:
                status.previous = status.version
            self._refusals.forget(role)
            # ``ref`` is what this role was last switched to (/readyz), not the configured one it has left
            status.state, status.ref, status.version, status.detail = "ready", ref, first.manifest.version, None
            engines = "; ".join(f"{s.name} on {describe_engine(s.engine)}" for s in slots.values())
            log.info(
                "model %s ready: %s/%s in %.2fs: %s", role, status.name, status.version, first.load_seconds, engines
            )
            return first.manifest.version

    async def _build_with_retries(self, role: Role, ref: str) -> dict[str, ModelSlot]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(StoreUnavailable),
            stop=stop_after_attempt(self.settings.store_retries + 1),
            wait=wait_exponential(multiplier=0.5, max=30),
            reraise=True,
        ):
            with attempt:
                return await asyncio.to_thread(self._build_role, role, ref)
        raise AssertionError("unreachable: tenacity reraises")

    def _build_role(self, role: Role, ref: str) -> dict[str, ModelSlot]:
        started = time.perf_counter()
        name = self.status[role].name
        if role in OPTIONAL_ROLES and name not in self.store.names():
            raise ModelAbsent(f"the store {self.store.uri} has no {name}")
        folder, manifest = self.store.fetch(name, ref)
        slots = {}
        for plan in (p for p in self.plans if p.role == role):
            try:
                predictor = plan.build(folder, manifest, self.settings.device)
                if self.settings.warmup and plan.warmup and hasattr(predictor, "warmup"):
                    predictor.warmup()
            except LOAD_ERRORS:
                raise
            except Exception as error:  # a manifest of the wrong shape surfaces as AttributeError, KeyError, ...
                # ... which used to end the start-up's load task: every later role stayed "loading", unlogged.
                where = f"{manifest.name}/{manifest.version}"
                raise ArtifactError(f"{where}: cannot build {plan.slot}: {type(error).__name__}: {error}") from error
            limits = partial(self.slot_batch_limits, plan.slot)
            engine = plan.engine(manifest) if plan.engine else None
            alone = self.alone if plan.inline else _never
            slots[plan.slot] = ModelSlot(
                plan.slot,
                manifest,
                predictor,
                self.queue_limit if plan.queue_limit is None else _lowest(self.queue_limit, plan.queue_limit),
                limits,
                engine=engine,
                alone=alone,
                job_seconds=plan.job_seconds,
            )
        for slot in slots.values():
            slot.load_seconds = time.perf_counter() - started
        return slots

    async def warm_deferred(self) -> list[str]:
        """Warm up, on their own threads, the loaded slots whose plan skipped the warm-up at load; their names.

        Readiness does not wait for these (NST's first backward pass takes seconds); a request arriving
        meanwhile queues behind the warm-up on the slot's thread instead of paying for it inside its budget.
        Each slot is tried once, so this runs again at every poll for the slots loaded since (a failed warm-up
        is not tried again: the first request pays for it instead).
        """
        warmed: list[str] = []
        if not self.settings.warmup:
            return warmed
        for plan in (p for p in self.plans if not p.warmup):
            slot = self.slots.get(plan.slot)
            if slot is None or slot.deferred_warm_up_tried or not hasattr(slot.predictor, "warmup"):
                continue
            slot.deferred_warm_up_tried = True
            try:  # on the slot's own thread, not counted as an inference
                await slot.on_thread(lambda predictor: predictor.warmup())
            except Exception as error:  # a warm-up only: the first request pays for it instead
                log.warning("deferred warm-up of %s failed: %s", plan.slot, error)
                continue
            warmed.append(plan.slot)
        return warmed

    def describe(self) -> dict[Role, RoleStatus]:
        return self.status

    def close(self) -> None:
        for slot in self.slots.values():
            slot.close()
