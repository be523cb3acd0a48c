"""Face-crop classification around the network, shared by the torch and the ONNX predictors; torch-free.

``preprocess`` resizes the whole crop to the input side with Pillow's antialiased bilinear filter (within
one grey level of the torchvision resize the training's validation uses) and normalises it;
``classifications`` turns logits into probabilities per label, divided first by the manifest's
``temperature`` (fitted on the validation split) so a score is a calibrated probability.
With flip test-time augmentation (the manifest's ``flip_tta``) each crop also runs mirrored, and the two
probability vectors are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, InputSpec, Manifest
from models.classifier.types import ARCHITECTURE, DEFAULT_CROP_MARGIN, Classification


def check_classifier_manifest(manifest: Manifest) -> InputSpec:
    """The manifest's input spec; ``ArtifactError`` unless it describes a FaceNet with input and labels."""
    if manifest.architecture != ARCHITECTURE:
        raise ArtifactError(f"{manifest.name}: architecture {manifest.architecture!r} is not {ARCHITECTURE!r}")
    if manifest.input is None or not manifest.labels:
        raise ArtifactError(f"{manifest.name}: a classifier manifest needs input and labels")
    return manifest.input


def flip_tta(manifest: Manifest) -> bool:
    """Whether the artifact is served with flip test-time augmentation (as it was evaluated)."""
    return bool(manifest.hyperparameters.get("flip_tta", False))


def temperature(manifest: Manifest) -> float:
    """The logit temperature fitted on the validation split (1: uncalibrated), so scores are probabilities."""
    return float(manifest.hyperparameters.get("temperature", 1.0))


def crop_margin(manifest: Manifest) -> float:
    """How much the HTTP layer should grow a detector box (per side, fraction of its size) before cropping."""
    return float(manifest.hyperparameters.get("crop_margin", DEFAULT_CROP_MARGIN))


def expand_box(box: Sequence[float], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``margin`` of its size on every side (crops then resemble training crops), clipped."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, round(x1 - dx)), max(0, round(y1 - dy))
    right, bottom = min(width, round(x2 + dx)), min(height, round(y2 + dy))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def preprocess_crop(image: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Any PIL image -> (3, size, size) float32, resized whole (no crop) and normalised per channel."""
    resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) / 255  # (S, S, 3)
    normalised = (pixels - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return normalised.transpose(2, 0, 1)  # (3, S, S)


def preprocess(batch: list[Image.Image], spec: InputSpec, flip: bool = False) -> np.ndarray:
    """A batch of crops -> (B, 3, S, S) float32 network input; with ``flip``, (2B, ...): the B crops, then mirrored."""
    crops = np.stack([preprocess_crop(image, spec.size, spec.mean, spec.std) for image in batch])
    return np.concatenate([crops, crops[..., ::-1]]) if flip else crops


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (B, C) logits, in float64 so probabilities sum to one tightly."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)  # (B, C), exp cannot overflow
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def probabilities(logits: np.ndarray, flip: bool = False, temperature: float = 1.0) -> np.ndarray:
    """(B, C) probabilities from (B, C) logits, or from (2B, C) with ``flip``: the mean over each crop's two views.

    Logits are divided by ``temperature`` first (temperature scaling keeps the argmax, calibrates the scores).
    """
    assert temperature > 0, f"temperature must be positive, got {temperature}"
    probs = softmax(logits / temperature)
    if not flip:
        return probs
    assert len(probs) % 2 == 0, f"flip needs crops and their mirrors, got {len(probs)} rows"
    half = len(probs) // 2
    return (probs[:half] + probs[half:]) / 2


def classifications(
    logits: np.ndarray, labels: list[str], flip: bool = False, temperature: float = 1.0
) -> list[Classification]:
    """One ``Classification`` per crop: the most probable label and every probability (see ``probabilities``)."""
    assert logits.ndim == 2 and logits.shape[1] == len(labels), f"logits {logits.shape} for {len(labels)} labels"
    results = []
    for row in probabilities(logits, flip, temperature).tolist():
        best = max(range(len(row)), key=row.__getitem__)
        results.append(Classification(labels[best], row[best], dict(zip(labels, row, strict=True))))
    return results
