"""Teacher boxes as training labels: a measured box convention, sure faces, and regions to ignore.

Three sources must frame a face the same way or the student learns a blurred average: the teacher's
boxes (WIDER FACE style: forehead to chin, narrow), the composites' mask boxes, and the hand-drawn
``face-boxes`` we evaluate on (dlib: square, brow to below the mouth). ``fit_convention`` measures the
per-axis scale and centre offset that maps one onto the other from matched boxes.

Detections the teacher is unsure of (score between the floor and the keep threshold) and faces too small
to learn from are neither labels nor background: ``grey_out`` paints them flat grey in the training
image, so the student is never told that a face is background.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

GREY = (114, 114, 114)  # the letterbox grey: a region the network has learned carries no object


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) and (B, 4) x1, y1, x2, y2 boxes -> (A, B) IoU."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # (A, B, 2)
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (A, B, 2)
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)  # (A, B)
    union = (a[:, 2:] - a[:, :2]).prod(axis=1)[:, None] + (b[:, 2:] - b[:, :2]).prod(axis=1)[None, :]
    return np.divide(intersection, union - intersection, out=np.zeros_like(intersection), where=union > 0)


def covered_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) and (B, 4) boxes -> (A, B) share of each ``a`` box's area that lies inside the ``b`` box."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # (A, B, 2)
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (A, B, 2)
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)  # (A, B)
    area = (a[:, 2:] - a[:, :2]).prod(axis=1)[:, None]  # (A, 1)
    return np.divide(intersection, area, out=np.zeros_like(intersection), where=area > 0)


def drop_nested(boxes: np.ndarray) -> np.ndarray:
    """Boxes without those lying mostly inside a larger one (a mouth or an eye the teacher took for a face).

    NMS misses them: a small box inside a large one has a small IoU with it.
    """
    boxes = boxes.reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # (N,)
    inside = covered_share(boxes, boxes) > 0.6  # (N, N)
    nested = (inside & (area[None, :] > area[:, None])).any(axis=1)  # (N,) inside a larger box
    return boxes[~nested]


def match_pairs(source: np.ndarray, target: np.ndarray, min_iou: float = 0.3) -> list[tuple[int, int]]:
    """Greedy one-to-one matches (source index, target index), best IoU first, each at least ``min_iou``."""
    overlaps = box_iou(source.reshape(-1, 4), target.reshape(-1, 4))  # (S, T)
    pairs: list[tuple[int, int]] = []
    while overlaps.size and overlaps.max() >= min_iou:
        i, j = np.unravel_index(int(overlaps.argmax()), overlaps.shape)
        pairs.append((int(i), int(j)))
        overlaps[i, :], overlaps[:, j] = -1, -1
    return pairs


@dataclass(frozen=True)
class BoxConvention:
    """``w' = scale_w * w``, ``cx' = cx + shift_x * w`` (and likewise for heights): one framing to another."""

    scale_w: float = 1.0
    scale_h: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def apply(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1, y1, x2, y2 -> the same faces framed the other way."""
        boxes = boxes.reshape(-1, 4).astype(np.float64)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]  # (N,)
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2 + self.shift_x * w, (boxes[:, 1] + boxes[:, 3]) / 2 + self.shift_y * h
        half_w, half_h = self.scale_w * w / 2, self.scale_h * h / 2
        return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)

    def inverse(self) -> BoxConvention:
        return BoxConvention(
            1 / self.scale_w, 1 / self.scale_h, -self.shift_x / self.scale_w, -self.shift_y / self.scale_h
        )

    def then(self, other: BoxConvention) -> BoxConvention:
        """This convention followed by ``other``, as one."""
        return BoxConvention(
            self.scale_w * other.scale_w,
            self.scale_h * other.scale_h,
            self.shift_x + other.shift_x * self.scale_w,
            self.shift_y + other.shift_y * self.scale_h,
        )

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def fit_convention(source: np.ndarray, target: np.ndarray) -> BoxConvention:
    """The medians over matched pairs (rows of ``source`` and ``target``) of width and height ratios and offsets."""
    sw, sh = source[:, 2] - source[:, 0], source[:, 3] - source[:, 1]
    tw, th = target[:, 2] - target[:, 0], target[:, 3] - target[:, 1]
    dx = ((target[:, 0] + target[:, 2]) - (source[:, 0] + source[:, 2])) / 2 / sw
    dy = ((target[:, 1] + target[:, 3]) - (source[:, 1] + source[:, 3])) / 2 / sh
    return BoxConvention(*(float(np.median(v)) for v in (tw / sw, th / sh, dx, dy)))


def mean_iou(source: np.ndarray, target: np.ndarray) -> float:
    """Mean IoU of row-wise paired boxes (0 when there are none)."""
    if len(source) == 0:
        return 0.0
    return float(np.mean([box_iou(s[None], t[None])[0, 0] for s, t in zip(source, target, strict=True)]))


def convention_report(source: np.ndarray, target: np.ndarray, fitted: BoxConvention) -> dict[str, float]:
    """How well paired boxes agree before and after mapping ``source`` by ``fitted``."""
    return {
        "pairs": len(source),
        "mean_iou_before": round(mean_iou(source, target), 4),
        "mean_iou_after": round(mean_iou(fitted.apply(source), target), 4),
    }


def split_detections(
    boxes: np.ndarray, scores: np.ndarray, keep: float, min_side: float
) -> tuple[np.ndarray, np.ndarray]:
    """(faces, ignore): sure faces at least ``min_side`` px on their short side, and everything else detected."""
    short_side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])  # (N,)
    sure = (scores >= keep) & (short_side >= min_side)
    return drop_nested(boxes[sure]), boxes[~sure].reshape(-1, 4)


def grey_out(image: Image.Image, regions: np.ndarray, keep_clear: np.ndarray, grow: float = 0.15) -> int:
    """Paint ``regions`` (grown by ``grow`` of their side) flat grey, except those overlapping a face to keep.

    A region on a kept face is a duplicate of it or a part of it, not a second face; painting it would
    erase the face. Returns how many were painted.
    """
    draw = ImageDraw.Draw(image)
    painted = 0
    for x1, y1, x2, y2 in regions.reshape(-1, 4):
        region = np.array([[x1, y1, x2, y2]])
        keep = keep_clear.reshape(-1, 4)
        if len(keep) and (box_iou(region, keep).max() > 0.3 or covered_share(region, keep).max() > 0.3):
            continue
        dx, dy = grow * (x2 - x1), grow * (y2 - y1)
        draw.rectangle((x1 - dx, y1 - dy, x2 + dx, y2 + dy), fill=GREY)
        painted += 1
    return painted


def visible_share(boxes: np.ndarray, crop: tuple[float, float, float, float]) -> np.ndarray:
    """(N,) share of each box's area inside ``crop``."""
    left, top, right, bottom = crop
    inside_w = np.clip(np.minimum(boxes[:, 2], right) - np.maximum(boxes[:, 0], left), 0, None)
    inside_h = np.clip(np.minimum(boxes[:, 3], bottom) - np.maximum(boxes[:, 1], top), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.divide(inside_w * inside_h, area, out=np.zeros_like(area), where=area > 0)
