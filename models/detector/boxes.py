"""Box geometry for the face detector: letterbox pre-processing and non-maximum suppression.

Pure functions on PIL images and tensors, no network: the letterbox keeps the aspect ratio and pads
to a square with YOLO's grey (114), so the network sees undistorted faces at any image shape, and
``unletterbox`` is its exact inverse for boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.ops import batched_nms

PAD_VALUE = 114 / 255  # YOLO's letterbox grey; the network was trained with this padding
# Candidates kept before NMS, as ultralytics does: bounds NMS time on a model that scores everything high.
MAX_CANDIDATES = 30_000


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on the square canvas: ``canvas = image * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float
    width: int
    height: int


def letterbox(image: Image.Image, size: int) -> tuple[torch.Tensor, Letterbox]:
    """Resize ``image`` so its longest side is ``size`` and pad it centred to a ``size``×``size`` square.

    Returns a (3, size, size) float tensor in [0, 1] and the placement needed to map boxes back.
    """
    assert size > 0, f"letterbox size must be positive, got {size}"
    width, height = image.size
    scale = size / max(width, height)
    # max(1, ...) keeps a 16×4000 strip from collapsing to zero rows.
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.convert("RGB").resize((new_width, new_height), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1).float() / 255  # (3, h', w')
    pad_x, pad_y = (size - new_width) // 2, (size - new_height) // 2
    canvas = torch.full((3, size, size), PAD_VALUE)
    canvas[:, pad_y : pad_y + new_height, pad_x : pad_x + new_width] = pixels
    return canvas, Letterbox(scale=scale, pad_x=float(pad_x), pad_y=float(pad_y), width=width, height=height)


def unletterbox(boxes_xyxy: torch.Tensor, info: Letterbox) -> torch.Tensor:
    """Map (..., 4) x1,y1,x2,y2 boxes from the letterboxed canvas to original image pixels, clipped to it."""
    offset = boxes_xyxy.new_tensor([info.pad_x, info.pad_y, info.pad_x, info.pad_y])
    boxes = (boxes_xyxy - offset) / info.scale  # (..., 4)
    upper = boxes.new_tensor([info.width, info.height, info.width, info.height])
    return torch.minimum(boxes.clamp(min=0), upper)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> (..., 4) x1, y1, x2, y2."""
    centre, half = boxes[..., :2], boxes[..., 2:] / 2
    return torch.cat((centre - half, centre + half), dim=-1)


def non_max_suppression(pred: torch.Tensor, conf: float, iou: float, max_det: int) -> list[torch.Tensor]:
    """Class-aware NMS over decoded YOLO head output.

    ``pred`` is (B, 4 + nc, A): cx, cy, w, h in input pixels, then per-class scores in [0, 1].
    Each anchor votes for its best class only; anchors with a best score above ``conf`` enter
    ``torchvision.ops.batched_nms``, and the ``max_det`` highest-scoring survivors are kept.
    Returns one (n, 6) tensor per image: x1, y1, x2, y2, score, class, sorted by descending score.
    """
    assert pred.ndim == 3 and pred.shape[1] > 4, f"expected (B, 4 + nc, A), got {tuple(pred.shape)}"
    assert 0 <= conf <= 1 and 0 <= iou <= 1, f"conf and iou must lie in [0, 1], got {conf}, {iou}"
    assert max_det >= 0, f"max_det must be >= 0, got {max_det}"
    return [suppress_one(anchors.T, conf, iou, max_det) for anchors in pred]


def suppress_one(anchors: torch.Tensor, conf: float, iou: float, max_det: int) -> torch.Tensor:
    """NMS for one image's (A, 4 + nc) anchors; returns (n, 6)."""
    scores, classes = anchors[:, 4:].max(dim=1)  # (A,), (A,)
    keep = scores > conf
    boxes, scores, classes = cxcywh_to_xyxy(anchors[keep, :4]), scores[keep], classes[keep]
    if scores.numel() > MAX_CANDIDATES:
        top = scores.topk(MAX_CANDIDATES).indices
        boxes, scores, classes = boxes[top], scores[top], classes[top]
    kept = batched_nms(boxes.float(), scores.float(), classes, iou)[:max_det]  # indices by descending score
    return torch.cat((boxes[kept], scores[kept, None], classes[kept, None].to(boxes.dtype)), dim=1)  # (n, 6)
