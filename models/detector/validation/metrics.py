"""Detector metrics on the validation set: faces, ignore regions, face-size bands, reliability of scores.

Matching per photo, detections by descending score: a detection claims the unclaimed face it overlaps
most when that IoU reaches ``IOU_MATCH`` (a true positive); otherwise, when it lies on an ignore region
(or a face too small for the evaluation), it is not counted; otherwise it is a false detection. Faces
whose shorter side is under ``min_face`` become ignore regions and detections under ``min_face`` are
dropped, as the served ``min_size`` drops them. AP50 pools the counted detections of all photos.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.detector.evaluate import average_precision, box_iou, precision_recall
from models.detector.pseudo_labels import covered_share

IOU_MATCH = 0.5
ON_IGNORE = 0.5  # share of a detection inside an ignore region for it to be not counted
BANDS = ((0.0, 24.0), (24.0, 48.0), (48.0, 96.0), (96.0, float("inf")))
SCORE_BINS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001)


@dataclass(frozen=True)
class PhotoResult:
    name: str
    faces: np.ndarray  # (G, 4)
    ignore: np.ndarray  # (I, 4)
    boxes: np.ndarray  # (D, 4) detections, best first
    scores: np.ndarray  # (D,)


@dataclass(frozen=True)
class Matched:
    """Every counted detection (score, hit, short side) and every evaluated face (short side, found score)."""

    scores: np.ndarray
    hits: np.ndarray
    det_sides: np.ndarray
    face_sides: np.ndarray
    face_found: np.ndarray  # (F,) the score of the detection that found the face, 0 when none did
    photos: int


def short_side(boxes: np.ndarray) -> np.ndarray:
    boxes = boxes.reshape(-1, 4)
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])


def match_photo(result: PhotoResult, min_face: float) -> tuple[list[tuple[float, bool, float]], np.ndarray, np.ndarray]:
    """(score, hit, side) per counted detection; and the photo's evaluated faces' sides and found scores."""
    small = short_side(result.faces) < min_face
    faces, ignore = result.faces[~small], np.concatenate([result.ignore.reshape(-1, 4), result.faces[small]])
    keep = short_side(result.boxes) >= min_face
    boxes, scores = result.boxes[keep], result.scores[keep]
    overlaps = box_iou(boxes, faces) if len(faces) else np.zeros((len(boxes), 0))
    on_ignore = covered_share(boxes, ignore).max(axis=1) >= ON_IGNORE if len(ignore) else np.zeros(len(boxes), bool)
    if len(ignore):
        on_ignore |= box_iou(boxes, ignore).max(axis=1) >= IOU_MATCH
    found = np.zeros(len(faces))
    counted: list[tuple[float, bool, float]] = []
    for k in np.argsort(-scores, kind="stable"):
        row = np.where(found > 0, -1.0, overlaps[k]) if len(faces) else overlaps[k]
        if len(faces) and row.max() >= IOU_MATCH:
            found[int(row.argmax())] = scores[k]
            counted.append((float(scores[k]), True, float(short_side(boxes[k])[0])))
        elif not on_ignore[k]:
            counted.append((float(scores[k]), False, float(short_side(boxes[k])[0])))
    return counted, short_side(faces), found


def match_all(results: Sequence[PhotoResult], min_face: float) -> Matched:
    rows: list[tuple[float, bool, float]] = []
    sides, found = [], []
    for result in results:
        counted, face_sides, face_found = match_photo(result, min_face)
        rows += counted
        sides.append(face_sides)
        found.append(face_found)
    array = np.array(rows, dtype=np.float64).reshape(-1, 3)
    order = np.argsort(-array[:, 0], kind="stable")
    return Matched(
        array[order, 0], array[order, 1], array[order, 2], np.concatenate(sides), np.concatenate(found), len(results)
    )


def at_conf(m: Matched, conf: float) -> dict[str, float]:
    """Precision, recall, F1, counts and false detections per photo at a score threshold."""
    tp = float(m.hits[m.scores >= conf].sum())
    fp = float((m.scores >= conf).sum()) - tp
    fn = float(len(m.face_sides)) - tp
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "fp_per_photo": fp / m.photos,
    }


def ap50(m: Matched) -> float:
    precision, recall = precision_recall(m.hits, len(m.face_sides))
    return average_precision(precision, recall)


def best_conf(m: Matched, grid: Sequence[float]) -> float:
    """The threshold of ``grid`` with the best F1 (the lower one on ties: more faces found)."""
    return max(grid, key=lambda conf: (round(at_conf(m, conf)["f1"], 4), -conf))


def by_band(m: Matched, conf: float) -> list[dict[str, Any]]:
    """Recall of faces and precision of detections per face-size band (sides in the photo's pixels)."""
    rows = []
    for low, high in BANDS:
        faces = (m.face_sides >= low) & (m.face_sides < high)
        dets = (m.det_sides >= low) & (m.det_sides < high) & (m.scores >= conf)
        tp = float(m.hits[dets].sum())
        rows.append(
            {
                "band": f"{low:g}–{high:g}" if high != float("inf") else f">{low:g}",
                "faces": int(faces.sum()),
                "recall": float((m.face_found[faces] >= conf).mean()) if faces.any() else float("nan"),
                "detections": int(dets.sum()),
                "precision": tp / dets.sum() if dets.any() else float("nan"),
            }
        )
    return rows


def reliability(m: Matched) -> list[dict[str, Any]]:
    """Of the counted detections with a score in each bin, the share that are faces."""
    rows = []
    for low, high in itertools.pairwise(SCORE_BINS):
        inside = (m.scores >= low) & (m.scores < high)
        share = float(m.hits[inside].mean()) if inside.any() else float("nan")
        rows.append({"bin": f"{low:.2f}–{min(high, 1.0):.2f}", "detections": int(inside.sum()), "faces": share})
    return rows
