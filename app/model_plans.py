"""Which predictors the service builds from each role's artifact, on which backend.

Imports stay lazy: torch is heavy, and a service whose models all run on ONNX Runtime or OpenVINO
(``DEEPCANVAS_{DETECTOR,CLASSIFIER,STYLE}_BACKEND=onnx|openvino``) must start without torch installed.
A missing backend package becomes an ``ArtifactError``, so the role reports it as failed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.manager import Builder, SlotPlan
from app.settings import Backend, Settings
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


def build_detector(folder: Path, manifest: Manifest, device: str) -> Any:
    if _predictor_class("models.detector.rfb_predictor", "ships_as_onnx")(manifest):
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
    if _predictor_class("models.detector.rfb_predictor", "ships_as_onnx")(manifest):
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


def build_gallery(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.style.gallery import StyleGallery

    return StyleGallery.from_artifact(folder, manifest)  # images only: no device, no backend


def _builder(
    backend: Backend, torch_builder: Builder, onnx_builder: Callable[..., Any], settings: Settings | None
) -> Builder:
    if backend == "torch":
        return torch_builder
    return partial(onnx_builder, runtime=settings.runtime(backend) if settings else Runtime())


def default_plans(settings: Settings | None = None) -> list[SlotPlan]:
    """One slot per role, each on the backend ``settings`` names (torch without settings).

    NST gets its own slot (and encoder copy) so a slow optimisation never blocks AdaIN requests. It needs
    gradients, so it exists only on the torch style backend: with ``style_backend=onnx`` or ``openvino`` there is no
    ``nst`` slot and ``services.stylize`` answers method=nst with a 422.
    """
    backend: dict[str, Backend] = {"detector": "torch", "classifier": "torch", "style": "torch"}
    if settings is not None:
        backend = {
            "detector": settings.detector_backend,
            "classifier": settings.classifier_backend,
            "style": settings.style_backend,
        }
    plans = [
        SlotPlan("detector", "detector", _builder(backend["detector"], build_detector, build_onnx_detector, settings)),
        SlotPlan(
            "classifier",
            "classifier",
            _builder(backend["classifier"], build_classifier, build_onnx_classifier, settings),
        ),
        SlotPlan("style", "style", _builder(backend["style"], build_style, build_onnx_style, settings)),
    ]
    if backend["style"] == "torch":
        plans.append(SlotPlan("nst", "style", build_nst))
    return [*plans, SlotPlan("gallery", "gallery", build_gallery)]
