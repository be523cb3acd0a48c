"""Box geometry for the face detector: letterbox pre-processing and non-maximum suppression.

Pure numpy functions on PIL images and arrays, shared by the torch and the ONNX predictors: the
letterbox keeps the aspect ratio and pads to a square with YOLO's grey (114), so the network sees
undistorted faces at any image shape, and ``unletterbox`` is its exact inverse for boxes. The NMS
keeps exactly the boxes ``torchvision.ops.batched_nms`` keeps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

PAD_VALUE = 114 / 255  # YOLO's letterbox grey; the network was trained with this padding
# Candidates kept before NMS, as ultralytics does: bounds NMS time on a model that scores everything high.
MAX_CANDIDATES = 30_000


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on its canvas: ``canvas = image * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int


def canvas_shape(width: int, height: int, size: int, stride: int | None = None) -> tuple[int, int]:
    """(height, width) of the letterbox canvas for a ``width``×``height`` image.

    Without ``stride``: the ``size``×``size`` square. With it: the smallest multiple of ``stride`` on each
    side that holds the image scaled to a longest side of ``size`` (as ultralytics predicts), so a 4:3
    photo runs on 3/4 of the square's pixels.
    """
    assert size > 0, f"letterbox size must be positive, got {size}"
    if stride is None:
        return size, size
    assert size % stride == 0, f"size {size} must be a multiple of the stride {stride}"
    new_width, new_height = _scaled(width, height, size)
    return min(size, math.ceil(new_height / stride) * stride), min(size, math.ceil(new_width / stride) * stride)


def _scaled(width: int, height: int, size: int) -> tuple[int, int]:
    scale = size / max(width, height)
    # max(1, ...) keeps a 16×4000 strip from collapsing to zero rows.
    return max(1, round(width * scale)), max(1, round(height * scale))


def letterbox(image: Image.Image, size: int, stride: int | None = None) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` so its longest side is ``size`` and pad it centred onto its canvas (``canvas_shape``).

    Returns a (3, H, W) float32 array in [0, 1] and the placement needed to map boxes back.
    """
    width, height = image.size
    canvas_height, canvas_width = canvas_shape(width, height, size, stride)
    scale = size / max(width, height)
    new_width, new_height = _scaled(width, height, size)
    resized = image.convert("RGB").resize((new_width, new_height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / 255  # (3, h', w')
    pad_x, pad_y = (canvas_width - new_width) // 2, (canvas_height - new_height) // 2
    canvas = np.full((3, canvas_height, canvas_width), PAD_VALUE, dtype=np.float32)
    canvas[:, pad_y : pad_y + new_height, pad_x : pad_x + new_width] = pixels
    return canvas, Letterbox(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y), width=width, height=height)


def unletterbox(boxes_xyxy: np.ndarray, info: Letterbox) -> np.ndarray:
    """Map (..., 4) x1,y1,x2,y2 boxes from the letterboxed canvas to original image pixels, clipped to it."""
    offset = np.array([info.pad_x, info.pad_y, info.pad_x, info.pad_y], dtype=boxes_xyxy.dtype)
    boxes = (boxes_xyxy - offset) / info.scale  # (..., 4)
    upper = np.array([info.width, info.height, info.width, info.height], dtype=boxes.dtype)
    return np.minimum(np.maximum(boxes, 0), upper)


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(..., 4) centre x, centre y, width, height -> (..., 4) x1, y1, x2, y2."""
    centre, half = boxes[..., :2], boxes[..., 2:] / 2
    return np.concatenate((centre - half, centre + half), axis=-1)


def non_max_suppression(pred: np.ndarray, conf: float, iou: float, max_det: int) -> list[np.ndarray]:
    """Class-aware NMS over decoded YOLO head output.

    ``pred`` is (B, 4 + nc, A): cx, cy, w, h in input pixels, then per-class scores in [0, 1].
    Each anchor votes for its best class only; anchors with a best score above ``conf`` enter a
    class-aware greedy NMS, and the ``max_det`` highest-scoring survivors are kept.
    Returns one (n, 6) array per image: x1, y1, x2, y2, score, class, sorted by descending score.
    """
    assert pred.ndim == 3 and pred.shape[1] > 4, f"expected (B, 4 + nc, A), got {tuple(pred.shape)}"
    assert 0 <= conf <= 1 and 0 <= iou <= 1, f"conf and iou must lie in [0, 1], got {conf}, {iou}"
    assert max_det >= 0, f"max_det must be >= 0, got {max_det}"
    return [suppress_one(anchors.T, conf, iou, max_det) for anchors in pred]


def suppress_one(anchors: np.ndarray, conf: float, iou: float, max_det: int) -> np.ndarray:
    """NMS for one image's (A, 4 + nc) anchors; returns (n, 6)."""
    classes = anchors[:, 4:].argmax(axis=1)  # (A,)
    scores = np.take_along_axis(anchors[:, 4:], classes[:, None], axis=1)[:, 0]  # (A,)
    keep = scores > conf
    boxes, scores, classes = cxcywh_to_xyxy(anchors[keep, :4]), scores[keep], classes[keep]
    order = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]  # descending score
    boxes, scores, classes = boxes[order], scores[order], classes[order]
    kept = batched_nms(boxes, classes, iou, max_det)
    return np.concatenate((boxes[kept], scores[kept, None], classes[kept, None].astype(boxes.dtype)), axis=1)


def batched_nms(boxes: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Indices of the (n, 4) ``boxes`` that NMS keeps per class, up to ``max_det``; boxes sorted by score.

    Shifting each class to its own region of the plane makes boxes of different classes disjoint
    (torchvision's trick), so one class-blind pass suppresses within classes only.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    shifted = boxes + (classes * (boxes.max() + 1)).astype(boxes.dtype)[:, None]  # (n, 4)
    return greedy_nms(shifted, iou, max_det)


def greedy_nms(boxes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Walk (n, 4) boxes in order, keeping each one whose IoU with every kept box is not above ``iou``.

    Stops once ``max_det`` are kept: later boxes could not enter the result anyway. As in torchvision,
    an undefined IoU (two empty boxes) suppresses nothing.
    """
    columns = _columns(boxes)
    remaining = np.arange(len(boxes))
    kept: list[int] = []
    while remaining.size and len(kept) < max_det:
        best, rest = remaining[0], remaining[1:]
        kept.append(int(best))
        remaining = rest[~(_iou_with(columns, best, rest) > iou)]
    return np.array(kept, dtype=np.int64)


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x1, y1, x2, y2, area


def _columns(boxes: np.ndarray) -> Columns:
    """(n, 4) x1,y1,x2,y2 boxes as flat float64 coordinate arrays and areas (an inverted box's is negative)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, k]) for k in range(4))
    return x1, y1, x2, y2, (x2 - x1) * (y2 - y1)


def _iou_with(columns: Columns, one: int, others: np.ndarray) -> np.ndarray:
    """IoU of box ``one`` with each box of the index array ``others``; NaN where it is undefined (0 / 0).

    On flat coordinate arrays: a crowd's NMS calls this once per kept box over hundreds of boxes, where the
    per-call overhead of (n, 2) slices and reductions cost more than the arithmetic.
    """
    x1, y1, x2, y2, areas = columns
    width = np.maximum(np.minimum(x2[one], x2[others]) - np.maximum(x1[one], x1[others]), 0.0)
    height = np.maximum(np.minimum(y2[one], y2[others]) - np.maximum(y1[one], y1[others]), 0.0)
    intersection = width * height
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / (areas[one] + areas[others] - intersection)


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (4,) x1,y1,x2,y2 box with each of (n, 4) boxes; (n,). The formula NMS uses."""
    columns = _columns(np.concatenate([np.reshape(box, (1, 4)), np.reshape(others, (-1, 4))]))
    return _iou_with(columns, 0, np.arange(1, len(columns[0])))
