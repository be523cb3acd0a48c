"""Which predictors the service builds from each role's artifact (imports stay lazy: torch is heavy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.manager import SlotPlan
from models.artifact import Manifest


def _device(name: str) -> Any:
    from models.predictor import resolve_device

    return resolve_device(name)


def build_detector(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.detector.predictor import FaceDetector

    return FaceDetector.from_artifact(folder, manifest, _device(device))


def build_classifier(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.classifier.predictor import FaceClassifier

    return FaceClassifier.from_artifact(folder, manifest, _device(device))


def build_style(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.style.predictor import StyleTransfer

    return StyleTransfer.from_artifact(folder, manifest, _device(device))


def build_nst(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.style.nst import NeuralStyleTransfer

    return NeuralStyleTransfer.from_artifact(folder, manifest, _device(device))


def build_gallery(folder: Path, manifest: Manifest, device: str) -> Any:
    from models.style.gallery import StyleGallery

    return StyleGallery.from_artifact(folder, manifest)  # images only: no device


def default_plans() -> list[SlotPlan]:
    """NST gets its own slot (and encoder copy) so a slow optimisation never blocks AdaIN requests."""
    return [
        SlotPlan("detector", "detector", build_detector),
        SlotPlan("classifier", "classifier", build_classifier),
        SlotPlan("style", "style", build_style),
        SlotPlan("nst", "style", build_nst),
        SlotPlan("gallery", "gallery", build_gallery),
    ]
