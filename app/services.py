"""What each endpoint does, between the routers (HTTP) and the model manager (predictors)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from PIL import Image

from app.errors import InvalidParameter, NotFound
from app.imaging import encode_image
from app.log_once import ReasonsLogged, reason_of
from app.manager import ModelManager, ModelSlot
from app.runtime import RuntimeParams
from app.schemas import (
    ClassifyResponse,
    Detection,
    DetectResponse,
    EngineInfo,
    FaceResult,
    ImageSize,
    ModelInfo,
    ModelRef,
    ModelsResponse,
    NSTInfo,
    StyleInfo,
    StylesResponse,
)
from app.settings import Settings
from app.timings import timed_phase
from models.artifact import Manifest
from models.detector.tiling import lossless_reduction
from models.detector.types import TILE_ABOVE, DetectRequest
from models.style.types import NSTRequest, StylizeRequest, matching_settings

log = logging.getLogger("deepcanvas")


@dataclass(frozen=True)
class DetectOptions:
    conf: float | None = None
    iou: float | None = None
    max_det: int | None = None
    imgsz: int | None = None
    min_size: float | None = None
    tile: str | None = None


@dataclass(frozen=True)
class StylizeOptions:
    style_names: tuple[str, ...]
    style_images: tuple[Image.Image, ...]
    weights: tuple[float, ...] | None
    alpha: float | None
    preserve_color: bool
    method: Literal["adain", "nst"]
    max_side: int | None
    format: Literal["png", "jpeg"]
    max_seconds: float | None = None
    manner: float | None = None


@dataclass(frozen=True)
class Stylized:
    data: bytes
    content_type: str
    model: ModelRef
    nst_steps: int | None = None  # method=nst: the L-BFGS steps its time budget allowed


def model_ref(slot: ModelSlot) -> ModelRef:
    return ModelRef(name=slot.manifest.name, version=slot.manifest.version)


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


def _detect_request(slot: ModelSlot, params: RuntimeParams, image: Image.Image, options: DetectOptions) -> Any:
    """The request's own values, else the runtime parameters, else the model's manifest defaults."""
    defaults = slot.manifest.defaults
    imgsz, tile, tile_above = _tiling(slot, options)
    return DetectRequest(
        image=image,
        conf=float(_first(options.conf, params.detector_conf, defaults.get("conf"), 0.25)),
        iou=float(_first(options.iou, params.detector_iou, defaults.get("iou"), 0.45)),
        max_det=int(_first(options.max_det, params.detector_max_det, defaults.get("max_det"), 300)),
        imgsz=imgsz,
        min_size=float(_first(options.min_size, params.detector_min_size, defaults.get("min_size"), 0.0)),
        tile=tile,
        tile_above=tile_above,
    )


def _tiling(slot: ModelSlot, options: DetectOptions) -> tuple[int, str, float]:
    """The request's (imgsz, tile, tile_above): its own values, else the model's manifest defaults."""
    defaults = slot.manifest.defaults
    size = slot.manifest.input.size if slot.manifest.input else 640
    tile = str(_first(options.tile, defaults.get("tile"), "off"))
    return int(_first(options.imgsz, size)), tile, float(defaults.get("tile_above", TILE_ABOVE))


R = TypeVar("R")


async def in_order(*steps: Awaitable[R]) -> list[R]:
    """Every step run concurrently (a decode's thread, a detector batch shared); their results in order.

    When steps fail, the error raised is that of the first failing step in argument order (``image_a`` before
    ``image_b``), whichever failed first in time, so an answer never depends on timing; every step has ended.
    """
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]


async def detect(
    manager: ModelManager,
    params: RuntimeParams,
    image: Image.Image,
    options: DetectOptions,
    source: tuple[int, int] | None = None,
) -> DetectResponse:
    """Detections in the pixels of the photo; ``source``: its (width, height) when ``image`` was decoded smaller
    (``detect_reduction``), to which the boxes, ``min_size`` and the reported size are scaled.

    A photo decoded whole (no ``source``: /classify, /identify, /verify, enrolment, a PNG) that is large enough
    for the detector to lose nothing at a reduction is averaged down by it (``Image.reduce``, a few ms) before
    the detector reads it: resizing its tiles from the whole photo would cost the detector about twice as long.
    The caller keeps the whole photo for its face crops.
    """
    slot = manager.slot("detector")
    if source is None and (factor := detect_reduction(manager, options, image.width, image.height)) > 1:
        with timed_phase("reduce"):
            image, source = await asyncio.to_thread(image.reduce, factor), image.size
    width, height = source or image.size
    scale_x, scale_y = width / image.width, height / image.height
    request = _detect_request(slot, params, image, options)
    request = replace(request, min_size=request.min_size / ((scale_x + scale_y) / 2))
    [found] = await slot.predict([request])
    return DetectResponse(
        model=model_ref(slot),
        image=ImageSize(width=width, height=height),
        detections=[Detection(box=scaled_box(d.box, scale_x, scale_y), score=d.score, label=d.label) for d in found],
    )


def detect_reduction(manager: ModelManager, options: DetectOptions, width: int, height: int) -> int:
    """How many times smaller a ``width`` x ``height`` photo may decode for the detector, losing nothing it
    sees (``tiling.lossless_reduction``: the same tiles, each still shrunk to the network's input)."""
    slot = manager.slot("detector")
    imgsz, tile, tile_above = _tiling(slot, options)
    return lossless_reduction(width, height, detector_side(slot.predictor, imgsz), tile, tile_above)


def detector_side(predictor: Any, imgsz: int) -> int:
    """The input side ``predictor`` reads an ``imgsz`` request at (its ``input_size``; ``imgsz`` without one)."""
    input_size = getattr(predictor, "input_size", None)
    return int(input_size(imgsz)) if callable(input_size) else imgsz


def scaled_box(box: Sequence[float], scale_x: float, scale_y: float) -> tuple[float, float, float, float]:
    """``box`` (x1, y1, x2, y2) scaled: into a smaller decode's pixels, or back to the photo's."""
    x1, y1, x2, y2 = box
    if scale_x == scale_y == 1.0:
        return x1, y1, x2, y2
    return (x1 * scale_x, y1 * scale_y, x2 * scale_x, y2 * scale_y)


def expand_box(box: tuple[float, ...], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` of its size on every side (crops then resemble training crops), clipped."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, round(x1 - dx)), max(0, round(y1 - dy))
    right, bottom = min(width, round(x2 + dx)), min(height, round(y2 + dy))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def crop_decode_side(manager: ModelManager) -> int | None:
    """How many pixels a whole-image face crop needs (None: the classifier is not loaded yet)."""
    slot = manager.slots.get("classifier")
    return classifier_decode_side(slot.manifest) if slot is not None else None


def classifier_decode_side(manifest: Manifest) -> int | None:
    """Twice the classifier's input side: what decoding a whole-image face crop must keep (None: not recorded)."""
    return 2 * manifest.input.size if manifest.input else None


async def face_source(
    image: Image.Image,
    source: tuple[int, int] | None,
    boxes: Sequence[Sequence[float]],
    least_side: int | None,
    whole: Callable[[], Awaitable[Image.Image]] | None,
) -> tuple[Image.Image, float, float]:
    """The image to read the faces in ``boxes`` (the photo's own pixels) from, and its scale (x, y) from them.

    ``image`` may be the photo decoded smaller (``source``: the photo's own size). When every box keeps at least
    ``least_side`` pixels on its shorter side there (the input side of the model that reads each face: the
    classifier's crop, the embedder's chip), the faces are read from it, and the whole decode (about 50 ms for a
    12 MP JPEG here) is skipped. Otherwise the photo is decoded whole (``whole``). On 200 portraits upscaled to
    4032 px: 221 -> 118 ms median a /classify, the largest face's label the same on 198 (docs/benchmarks-history.md,
    "Crops from the smaller decode"); identity: docs/identity.md, "Faces from the smaller decode".
    """
    if source is None:
        return image, 1.0, 1.0
    scale_x, scale_y = image.width / source[0], image.height / source[1]
    if least_side is not None and all(
        min((right - left) * scale_x, (bottom - top) * scale_y) >= least_side for left, top, right, bottom in boxes
    ):
        return image, scale_x, scale_y
    assert whole is not None, "a photo decoded smaller needs its whole decode for small faces"
    return await whole(), 1.0, 1.0


async def face_crops(
    image: Image.Image,
    source: tuple[int, int] | None,
    regions: list[tuple[int, int, int, int]],
    least_side: int | None,
    whole: Callable[[], Awaitable[Image.Image]] | None,
) -> list[Image.Image]:
    """``regions`` (in the photo's own pixels) cut from the image ``face_source`` picks for them."""
    if not regions:
        return []
    picked, scale_x, scale_y = await face_source(image, source, regions, least_side, whole)
    crops = []
    for region in regions:
        left, top, right, bottom = scaled_box(region, scale_x, scale_y)
        crops.append(picked.crop((round(left), round(top), round(right), round(bottom))))
    return crops


UNKNOWN_LABEL = "unknown"
# An NST painting whose client left ends within this: the optimiser checks its stop at every evaluation of the
# VGG, and a new stage before it begins (at 512 px on 2 cores it returned 0.07-0.11 s after the stop); the rest is
# room for a loaded machine.
NST_STOPS_WITHIN = 2.0
# The least NST time budget a request may ask for (or the service's own limit, where that is lower).
NST_LEAST_SECONDS = 1.0


def abstain(label: str, score: float, min_score: float) -> str:
    """``label``, or ``"unknown"`` when its (calibrated) probability is below ``min_score``."""
    return UNKNOWN_LABEL if score < min_score else label


def decide(probabilities: dict[str, float], labels: list[str], threshold: float) -> str:
    """Two labels: the second when its probability reaches ``threshold``; otherwise the most probable."""
    if len(labels) == 2:
        return labels[1] if probabilities[labels[1]] >= threshold else labels[0]
    return max(probabilities, key=probabilities.__getitem__)


async def classify(
    manager: ModelManager,
    params: RuntimeParams,
    image: Image.Image,
    detect_faces: bool,
    options: DetectOptions,
    min_score: float | None = None,
    source: tuple[int, int] | None = None,
    whole: Callable[[], Awaitable[Image.Image]] | None = None,
) -> ClassifyResponse:
    """Classify each face; a face whose score is below ``min_score`` (default: the runtime's) is ``unknown``.

    ``source``: the photo's own (width, height) when ``image`` was decoded smaller for the detector; ``whole``
    then decodes the photo whole, for faces too small in ``image`` for the classifier (``face_crops``).
    """
    classifier = manager.slot("classifier")
    detector_ref: ModelRef | None = None
    boxes: list[tuple[float, float, float, float] | None] = [None]
    crops = [image]
    if detect_faces:
        detected = await detect(manager, params, image, options, source)
        detector_ref = detected.model
        margin = float(getattr(classifier.predictor, "crop_margin", 0.0))
        boxes = [d.box for d in detected.detections]
        width, height = source or image.size
        regions = [expand_box(d.box, margin, width, height) for d in detected.detections]
        least = classifier.manifest.input.size if classifier.manifest.input else None
        crops = await face_crops(image, source, regions, least, whole)
    results = await classifier.predict(crops)
    labels = classifier.manifest.labels or (list(results[0].probabilities) if results else [])
    faces = []
    for box, result in zip(boxes, results, strict=True):
        label = decide(result.probabilities, labels, params.classifier_threshold)
        score = result.probabilities[label]
        label = abstain(label, score, _first(min_score, params.classifier_min_score))
        faces.append(FaceResult(box=box, label=label, score=score, probabilities=result.probabilities))
    return ClassifyResponse(model=model_ref(classifier), detector=detector_ref, faces=faces)


def _style_images(manager: ModelManager, options: StylizeOptions) -> list[Image.Image]:
    if options.style_names and options.style_images:
        raise InvalidParameter("give either style files or style_name values, not both")
    if not options.style_names and not options.style_images:
        raise InvalidParameter("a style is required: upload a 'style' file or give a 'style_name' (GET /styles)")
    if options.style_images:
        return list(options.style_images)
    gallery = manager.slot("gallery").predictor
    missing = [n for n in options.style_names if n not in gallery.names()]
    if missing:
        raise NotFound(f"unknown style {missing[0]!r}; GET /styles lists the gallery")
    return [gallery.image(name) for name in options.style_names]


def _style_weights(count: int, weights: tuple[float, ...] | None) -> tuple[float, ...]:
    if weights is None:
        return tuple(1.0 / count for _ in range(count))
    if len(weights) != count:
        raise InvalidParameter(f"style_weights has {len(weights)} values for {count} styles")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or max(weights) <= 0:
        raise InvalidParameter("style_weights must be finite and non-negative, with a positive sum")
    scaled = [w / max(weights) for w in weights]  # the largest first: weights near float's limit cannot overflow
    return tuple(w / sum(scaled) for w in scaled)


async def stylize(
    manager: ModelManager, settings: Settings, params: RuntimeParams, content: Image.Image, options: StylizeOptions
) -> Stylized:
    """The encoded image, its content type and the model that painted it."""
    styles = _style_images(manager, options)
    weights = _style_weights(len(styles), options.weights)
    if options.method == "nst":
        return await _stylize_nst(manager, settings, params, content, styles, weights, options)
    if options.max_seconds is not None:  # it was ignored, and a caller who forgot method=nst got AdaIN in silence
        raise InvalidParameter("max_seconds: only method=nst takes a time budget; AdaIN paints in one pass")
    slot = manager.slot("style")
    if options.manner and "manner" not in model_options(slot.manifest):
        where = f"{slot.manifest.name}/{slot.manifest.version}"
        raise InvalidParameter(f"manner: {where} has no decoder-side matching; use 0 or a style model that has it")
    request = StylizeRequest(
        content=content,
        styles=tuple(styles),
        weights=weights,
        alpha=_first(options.alpha, params.stylize_alpha),
        preserve_color=options.preserve_color,
        max_side=stylize_side(settings, params, options.method, options.max_side),
        manner=options.manner,
    )
    [painted] = await slot.predict([request])
    data, content_type = await encoded(painted, options.format)
    return Stylized(data, content_type, model_ref(slot))


def stylize_side(settings: Settings, params: RuntimeParams, method: str, max_side: int | None) -> int:
    """The longest side a painting is made at: the content and style uploads need no more than this."""
    if method == "nst":
        return min(max_side or settings.nst_max_side, settings.nst_max_side)
    return int(_first(max_side, params.stylize_max_side))


async def encoded(image: Image.Image, fmt: str) -> tuple[bytes, str]:
    """``image`` encoded off the event loop (a PNG takes milliseconds, during which no request would be read)."""
    with timed_phase("encode"):
        return await asyncio.to_thread(encode_image, image, fmt)


def nst_unavailable(manager: ModelManager, settings: Settings) -> str | None:
    """Why this service cannot paint with method=nst (None: it can, once its slot has loaded)."""
    if manager.has_plan("nst"):
        return None
    running = f"style_backend={settings.style_backend}"
    return f"method=nst needs torch (NST needs autograd); this service runs {running} without it"


def nst_info(manager: ModelManager, settings: Settings) -> NSTInfo:
    """What GET /styles says of method=nst: whether it runs here and its bounds (the page offers it by these)."""
    reason = nst_unavailable(manager, settings)
    return NSTInfo(
        available=reason is None,
        reason=reason,
        max_side=settings.nst_max_side,
        max_seconds=settings.nst_max_seconds,
    )


async def _stylize_nst(
    manager: ModelManager,
    settings: Settings,
    params: RuntimeParams,
    content: Image.Image,
    styles: list[Image.Image],
    weights: tuple[float, ...],
    options: StylizeOptions,
) -> Stylized:
    if (missing := nst_unavailable(manager, settings)) is not None:
        raise InvalidParameter(missing)
    if len(styles) != 1:
        raise InvalidParameter("method=nst takes exactly one style")
    if options.preserve_color or options.alpha not in (None, 1.0) or options.manner is not None:
        raise InvalidParameter("method=nst does not support alpha, preserve_color or manner; use method=adain")
    if options.max_seconds is not None and options.max_seconds > settings.nst_max_seconds:
        raise InvalidParameter(f"max_seconds: must be at most {settings.nst_max_seconds:g}")
    least = min(NST_LEAST_SECONDS, settings.nst_max_seconds)
    if options.max_seconds is not None and options.max_seconds < least:
        # a budget spent before the first L-BFGS step returned the photo unpainted, as a 200
        raise InvalidParameter(f"max_seconds: must be at least {least:g}: below that the photo came back unpainted")
    slot = manager.slot("nst")
    request = NSTRequest(
        content=content,
        style=styles[0],
        iterations=settings.nst_iterations,
        max_side=stylize_side(settings, params, options.method, options.max_side),
        max_seconds=options.max_seconds or settings.nst_max_seconds,
        stop=threading.Event(),
    )
    try:
        [result] = await slot.run(
            lambda predictor: predictor.predict([request]), seconds=request.max_seconds, stops_within=NST_STOPS_WITHIN
        )
    except asyncio.CancelledError:  # the client has gone (app.disconnect): the optimisation stops at once
        assert request.stop is not None
        request.stop.set()
        raise
    data, content_type = await encoded(result.image, options.format)
    return Stylized(data, content_type, model_ref(slot), nst_steps=result.steps)


async def remember_gallery_styles(manager: ModelManager, max_side: int) -> int:
    """Encode every gallery style once now, so ``style_name`` requests run only the content's encoder and the
    decoder; returns how many (0 when the style predictor keeps no statistics, or a model is not loaded)."""
    style, gallery = manager.slots.get("style"), manager.slots.get("gallery")
    if style is None or gallery is None or not hasattr(style.predictor, "remember_styles"):
        return 0
    images = [gallery.predictor.image(name) for name in gallery.predictor.names()]
    await style.run(lambda predictor: predictor.remember_styles(images, max_side))
    return len(images)


class LoadFollowUps:
    """What a model gets once it has loaded, beside readiness: its deferred warm-up (NST's, ``warm_deferred``) and,
    for the style model, the gallery styles' statistics at the parameters' ``stylize_max_side``.

    ``run`` does what the models serving now still lack, so it runs at start and again at every poll: a replica
    started while the store was away, whose style models loaded at a later poll, gets them then, and so do a
    style or gallery version activated since (new slots start without either) and a new ``stylize_max_side``.
    """

    def __init__(self, manager: ModelManager, max_side: Callable[[], int]) -> None:
        self.manager = manager
        self.max_side = max_side
        # the style and gallery slots whose statistics were computed, and at which side; weak: a slot swapped
        # out must not be kept alive (its predictor's memory) by this record
        self._statistics_of: tuple[weakref.ref[ModelSlot], weakref.ref[ModelSlot], int] | None = None
        self._lock = asyncio.Lock()  # the start's run and a poll's never do the same work twice
        self._failures = ReasonsLogged(log)  # a statistics failure, retried at every poll: logged once per reason

    async def run(self) -> None:
        async with self._lock:
            # the deferred warm-ups on their slots' threads, beside the gallery statistics on the style slot's
            deferred = asyncio.create_task(self.manager.warm_deferred(), name="deferred-warm-up")
            try:
                await self._remember_gallery_styles()
            except BaseException:  # cancelled (the poll stopping at shutdown): the warm-up must not outlive it
                deferred.cancel()
                await asyncio.gather(deferred, return_exceptions=True)
                raise
            warmed = await deferred
            if warmed:
                log.info("deferred warm-up done: %s", ", ".join(warmed))

    async def _remember_gallery_styles(self) -> None:
        style, gallery, side = self.manager.slots.get("style"), self.manager.slots.get("gallery"), self.max_side()
        if style is None or gallery is None:
            return
        if self._statistics_of is not None:
            done_style, done_gallery, done_side = self._statistics_of
            if done_style() is style and done_gallery() is gallery and done_side == side:
                return
        try:
            count = await remember_gallery_styles(self.manager, side)
        except Exception as error:  # a cache warm-up only: requests compute what it could not; tried again next run
            self._failures.log(
                "gallery statistics",
                reason_of(error),
                logging.WARNING,
                "gallery style statistics not precomputed: %s",
                error,
            )
            return
        self._failures.forget("gallery statistics")
        self._statistics_of = (weakref.ref(style), weakref.ref(gallery), side)
        if count:
            log.info("style statistics of %d gallery styles computed (max_side %d)", count, side)


def list_styles(manager: ModelManager, settings: Settings) -> StylesResponse:
    slot = manager.slot("gallery")
    styles = [
        StyleInfo(
            name=e.name,
            title=e.title,
            description=e.description,
            artist=e.artist,
            year=e.year,
            url=f"/styles/{e.name}/image",
        )
        for e in slot.manifest.gallery
    ]
    return StylesResponse(gallery=model_ref(slot), styles=styles, nst=nst_info(manager, settings))


def style_image(manager: ModelManager, name: str) -> bytes:
    gallery = manager.slot("gallery").predictor
    if name not in gallery.names():
        raise NotFound(f"unknown style {name!r}; GET /styles lists the gallery")
    data, _ = encode_image(gallery.image(name), "jpeg")
    return data


def model_options(manifest: Manifest) -> list[str]:
    """The request options this model takes that other versions of its role may not."""
    return ["manner"] if manifest.task == "stylize" and matching_settings(manifest) is not None else []


def list_models(manager: ModelManager) -> ModelsResponse:
    models = []
    for role in manager.describe():
        slot = manager.slots.get(role)
        if slot is None:
            continue
        m = slot.manifest
        models.append(
            ModelInfo(
                role=role,
                name=m.name,
                version=m.version,
                task=m.task,
                architecture=m.architecture,
                labels=m.labels,
                metrics=m.metrics,
                provenance=m.provenance.method,
                engine=slot.engine.engine if slot.engine else None,
                options=model_options(m),
            )
        )
    engines = [
        EngineInfo(slot=plan.slot, role=plan.role, engine=e.engine, precision=e.precision, reason=e.reason)
        for plan in manager.plans
        if (slot := manager.slots.get(plan.slot)) is not None and (e := slot.engine) is not None
    ]
    return ModelsResponse(store=manager.store.uri, models=models, engines=engines)
