"""What the face classifier returns, and its artifact's names; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURE = "facenet"
WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "model.onnx"
# Fraction by which a detector box is grown on each side before cropping; the training crops were
# zoomed between 0.75x and 1.2x, and a 0.1 margin (zoom 1/1.2 = 0.83x) sits inside that range.
DEFAULT_CROP_MARGIN = 0.1


@dataclass(frozen=True)
class Classification:
    label: str
    score: float  # probability of ``label``
    probabilities: dict[str, float]
