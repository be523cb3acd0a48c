"""What the face detector takes and returns, and its artifact's file names; torch-free."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

WEIGHTS_FILE = "weights.safetensors"
ONNX_FILE = "model.onnx"
VIEWS_FILE, COARSE_VIEWS_FILE = "model.views.onnx", "coarse.views.onnx"  # an RFB artifact's view graphs
COARSE_ONNX_FILE = "coarse.onnx"  # an RFB artifact's optional second, smaller export (the whole view again)
TILE_ABOVE = 1.5  # tile="auto" by default: photos whose longer side exceeds this many input sides


@dataclass(frozen=True)
class DetectRequest:
    """One image and its thresholds; ``imgsz`` is the network's square input side in pixels.

    ``min_size`` drops boxes whose shorter side is below it, in the original image's pixels (0 keeps all).
    ``tile``: ``off``, ``auto`` (photos whose longer side exceeds ``tile_above`` input sides are also read as
    overlapping tiles) or ``on`` (any photo larger than the input); see ``models.detector.tiling``.
    """

    image: Image.Image
    conf: float
    iou: float
    max_det: int
    imgsz: int
    min_size: float = 0.0
    tile: str = "off"
    tile_above: float = TILE_ABOVE


@dataclass(frozen=True)
class Detection:
    """A box in original image pixels (x1, y1, x2, y2), its score in [0, 1] and its label."""

    box: tuple[float, float, float, float]
    score: float
    label: str
