"""Which predictors the service builds from each role's artifact, on which engine.

Imports stay lazy: torch is heavy, and a service whose models all run on ONNX Runtime or OpenVINO (the
default ``auto`` wherever the artifacts carry ONNX files) must start without torch installed.
A missing backend package becomes an ``ArtifactError``, so the role reports it as failed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engines import AUTO_ORDER, EngineChoice, choose_engine, installed
from app.manager import Builder, SlotPlan
from app.settings import Role, Settings
from models.artifact import ArtifactError, Manifest
from models.onnx_backend import Runtime

logger = logging.getLogger(__name__)


def _predictor_class(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise ArtifactError(f"{name} needs {error.name or 'a package'}, which is not installed: {error}") from error


def _device(name: str) -> Any:
    resolve_device = _predictor_class("models.torch_backend", "resolve_device")
    return resolve_device(name)


def _ships_as_onnx(manifest: Manifest) -> bool:
    """Whether the artifact's network exists only as ONNX (an imported architecture): never on torch."""
    return bool(_predictor_class("models.detector.rfb_predictor", "ships_as_onnx")(manifest))


def build_detector(folder: Path, manifest: Manifest, device: str) -> Any:
    if _ships_as_onnx(manifest):
        # the artifact's network exists only as ONNX: run it on ONNX Runtime, and say so (/models, the log)
        note = "the torch backend runs this ONNX-only architecture on onnxruntime"
        logger.warning("%s/%s: %s", manifest.name, manifest.version, note)
        return build_onnx_detector(folder, manifest, device, Runtime(), note)
    detector = _predictor_class("models.detector.predictor", "FaceDetector")
    return detector.from_artifact(folder, manifest, _device(device))


def build_classifier(folder: Path, manifest: Manifest, device: str) -> Any:
    classifier = _predictor_class("models.classifier.predictor", "FaceClassifier")
    return classifier.from_artifact(folder, manifest, _device(device))


def build_style(folder: Path, manifest: Manifest, device: str) -> Any:
    style = _predictor_class("models.style.predictor", "StyleTransfer")
    return style.from_artifact(folder, manifest, _device(device))


def build_nst(folder: Path, manifest: Manifest, device: str) -> Any:
    nst = _predictor_class("models.style.nst", "NeuralStyleTransfer")
    return nst.from_artifact(folder, manifest, _device(device))


def build_onnx_detector(
    folder: Path, manifest: Manifest, device: str, runtime: Runtime | None = None, note: str = ""
) -> Any:
    """The artifact's own architecture (YOLO export or imported RFB) on an ONNX engine, as its manifest says."""
    if _ships_as_onnx(manifest):
        detector = _predictor_class("models.detector.rfb_predictor", "RfbFaceDetector")
        return detector.from_artifact(folder, manifest, device, runtime, note)
    detector = _predictor_class("models.detector.onnx_predictor", "OnnxFaceDetector")
    return detector.from_artifact(folder, manifest, device, runtime)


def build_onnx_classifier(folder: Path, manifest: Manifest, device: str, runtime: Runtime | None = None) -> Any:
    classifier = _predictor_class("models.classifier.onnx_predictor", "OnnxFaceClassifier")
    return classifier.from_artifact(folder, manifest, device, runtime)


def build_onnx_style(folder: Path, manifest: Manifest, device: str, runtime: Runtime | None = None) -> Any:
    style = _predictor_class("models.style.onnx_predictor", "OnnxStyleTransfer")
    return style.from_artifact(folder, manifest, device, runtime)


def build_embedder(folder: Path, manifest: Manifest, device: str) -> Any:
    embedder = _predictor_class("models.identity.predictor", "FaceEmbedder")
    return embedder.from_artifact(folder, manifest, _device(device))


def build_onnx_embedder(folder: Path, manifest: Manifest, device: str, runtime: Runtime | None = None) -> Any:
    embedder = _predictor_class("models.identity.onnx_predictor", "OnnxFaceEmbedder")
    return embedder.from_artifact(folder, manifest, device, runtime)


def build_gallery(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.style.gallery import StyleGallery

    return StyleGallery.from_artifact(folder, manifest)  # images only: no device, no backend


@dataclass(frozen=True)
class NetworkEngines:
    """How one role's network runs on each engine: a new role (or architecture) plugs in here.

    ``torch`` builds the torch predictor (None: the role has none, its artifacts run only on ONNX files);
    ``onnx`` builds the ONNX predictor with a ``runtime=`` keyword; ``onnx_files`` are the files it opens.
    """

    torch: Builder | None
    onnx: Callable[..., Any]
    onnx_files: tuple[str, ...]
    onnx_only: Callable[[Manifest], bool] = lambda _: False  # an architecture imported as ONNX, never on torch


# A role with a network: its settings need a ``<role>_backend`` field (``Backend``, default ``auto``).
NETWORKS: dict[Role, NetworkEngines] = {
    "detector": NetworkEngines(build_detector, build_onnx_detector, ("model.onnx",), _ships_as_onnx),
    "classifier": NetworkEngines(build_classifier, build_onnx_classifier, ("model.onnx",)),
    "style": NetworkEngines(build_style, build_onnx_style, ("encoder.onnx", "decoder.onnx")),
    "embedder": NetworkEngines(build_embedder, build_onnx_embedder, ("resnet.onnx",)),
}
# The networks whose every call sees the same input size (a face crop, a face chip): their cost does not grow
# with the photo, so a lone request may run them on the event loop (``ModelSlot``).
FIXED_INPUT: frozenset[Role] = frozenset({"classifier", "embedder"})
NST_ENGINE = EngineChoice("torch", "torch: NST needs autograd")
GALLERY_ENGINE = EngineChoice("none", "style images only, no network", "none")


def served_manifest(role: Role, manifest: Manifest, settings: Settings) -> Manifest:
    """``manifest`` as the settings serve it: without the detector's view graphs when ``detector_views`` is off."""
    if role == "detector" and not settings.detector_views and _ships_as_onnx(manifest):
        without_views = _predictor_class("models.detector.rfb_predictor", "without_views")
        return without_views(manifest)
    return manifest


def network_plan(role: Role, settings: Settings) -> SlotPlan:
    """The role's slot on the engine its backend setting chooses for each artifact (``app.engines``)."""
    network = NETWORKS[role]
    backend = getattr(settings, f"{role}_backend")

    def choose(manifest: Manifest) -> EngineChoice:
        setting = f"DEEPCANVAS_{role.upper()}_BACKEND"
        choice = choose_engine(backend, manifest, network.onnx_files, setting, settings.weights_precision == "auto")
        if choice.engine == "torch" and network.onnx_only(manifest):
            for engine in AUTO_ORDER:
                if installed(engine):
                    note = f"{manifest.architecture} ships only as ONNX, so it runs on {engine}"
                    choice = EngineChoice(engine, f"{choice.reason}, but {note}", choice.precision)
                    break
        if role == "detector" and network.onnx_only(manifest):
            views = _predictor_class("models.detector.rfb_predictor", "view_graphs")(manifest)
            if views is not None and settings.detector_views:
                shapes = ", ".join(f"{width}x{height}" for width, height in views.shapes)
                choice = EngineChoice(choice.engine, f"{choice.reason}; views {shapes}", choice.precision)
            elif views is not None:
                note = "the authors' graphs alone (DEEPCANVAS_DETECTOR_VIEWS=false)"
                choice = EngineChoice(choice.engine, f"{choice.reason}; {note}", choice.precision)
            streams = settings.detector_streams  # the RFB detector's lanes (models.detector.rfb_predictor)
            if choice.engine == "openvino" and streams > 1:
                lanes = f"micro-batches split across {streams} streams (DEEPCANVAS_DETECTOR_STREAMS)"
                return EngineChoice(choice.engine, f"{choice.reason}; {lanes}", choice.precision)
        return choice

    def build(folder: Path, manifest: Manifest, device: str) -> Any:
        choice = choose(manifest)
        if choice.engine == "torch":
            if network.torch is None:
                raise ArtifactError(
                    f"{manifest.name}/{manifest.version}: {role} runs only on ONNX files; {choice.reason}"
                )
            if not installed("torch"):
                raise ArtifactError(f"{manifest.name}/{manifest.version}: {choice.reason}, and torch is not installed")
            return network.torch(folder, manifest, device)
        runtime = settings.runtime(choice.engine, int8=choice.precision == "int8")  # type: ignore[arg-type]
        return network.onnx(folder, served_manifest(role, manifest, settings), device, runtime=runtime)

    return SlotPlan(role, role, build, choose, inline=role in FIXED_INPUT)


def nst_available(settings: Settings) -> bool:
    """NST needs torch's autograd: on the torch style backend, or ``auto`` with torch installed."""
    return settings.style_backend == "torch" or (settings.style_backend == "auto" and installed("torch"))


def default_plans(settings: Settings | None = None) -> list[SlotPlan]:
    """One slot per role, each on the engine ``settings`` choose per artifact (default settings: ``auto``).

    NST gets its own slot (and encoder copy) so a slow optimisation never blocks AdaIN requests. It needs
    gradients, so it exists only where torch runs (``nst_available``): elsewhere ``services.stylize``
    answers method=nst with a 422.
    """
    settings = settings or Settings()
    plans = [network_plan(role, settings) for role in NETWORKS]
    if nst_available(settings):
        # No warm-up: autograd's first backward pass takes seconds (8.7 s measured on a busy 2-core machine),
        # which would delay readiness for a method whose every request takes seconds anyway.
        # At most nst_queue_size paintings at once: a refusal's Retry-After says when the running one ends.
        nst = SlotPlan(
            "nst",
            "style",
            build_nst,
            lambda _: NST_ENGINE,
            warmup=False,
            queue_limit=lambda: settings.nst_queue_size,
            job_seconds=lambda: settings.nst_max_seconds,
        )
        plans.append(nst)
    return [*plans, SlotPlan("gallery", "gallery", build_gallery, lambda _: GALLERY_ENGINE)]
