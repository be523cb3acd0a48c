"""Evaluate a face detector artifact on real photos with hand-drawn boxes, and write its model card.

Detections come from our own ``FaceDetector`` (the served pre- and post-processing), not from
ultralytics. Matching follows PASCAL VOC: detections of all images are pooled and taken by descending
score; each claims the ground-truth box it overlaps most, and is a true positive when that IoU reaches
``iou_match`` and the box was not claimed before. AP is the area under the all-point interpolated
precision–recall curve (VOC 2010 onwards).

``boxes.json``: ``{"photo.jpg": {"split": "train" | "test", "boxes_xywh": [[left, top, w, h], ...]}}``.

The card's precision-recall chart goes beside it; detections drawn on the photos show ../shared's images, so
they go into a figures folder outside the artifact (``models/figures.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageDraw

from models.artifact import load_artifact
from models.detector.predictor import DetectRequest, FaceDetector
from models.figures import drop_from_artifact, not_shipped

FloatArray = npt.NDArray[np.float64]
CARD_NAME = "MODEL_CARD.md"
PR_CURVE_PNG = "precision_recall.png"
EVAL_COMMAND = "deepcanvas eval detector ARTIFACT BOXES --card DIR"
# Scores below this are kept only to draw the whole precision-recall curve; 0.001 is the usual floor for mAP.
CURVE_CONF = 0.001


@dataclass(frozen=True)
class ImageResult:
    """One photo's ground truth and detections, x1, y1, x2, y2 in its pixels."""

    name: str
    ground_truth: FloatArray  # (G, 4)
    boxes: FloatArray  # (D, 4)
    scores: FloatArray  # (D,)


def xywh_to_xyxy(boxes: Sequence[Sequence[float]]) -> FloatArray:
    """(N, 4) left, top, width, height -> (N, 4) x1, y1, x2, y2."""
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([array[:, :2], array[:, :2] + array[:, 2:]], axis=1)


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """(A, 4) and (B, 4) x1, y1, x2, y2 boxes -> (A, B) intersection over union."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])  # (A, B, 2)
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (A, B, 2)
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=2)  # (A, B)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(axis=1), (b[:, 2:] - b[:, :2]).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def match_detections(results: Sequence[ImageResult], iou_match: float) -> tuple[FloatArray, FloatArray]:
    """VOC matching over all images: (scores, is-true-positive) of every detection, by descending score."""
    entries = [(float(s), i, d) for i, r in enumerate(results) for d, s in enumerate(r.scores)]
    entries.sort(key=lambda entry: -entry[0])  # stable: equal scores keep image order
    claimed = [np.zeros(len(r.ground_truth), dtype=bool) for r in results]
    overlaps = [box_iou(r.boxes, r.ground_truth) for r in results]  # (D, G) per image
    hits = np.zeros(len(entries))
    for k, (_, image, detection) in enumerate(entries):
        if overlaps[image].shape[1] == 0:
            continue
        best = int(overlaps[image][detection].argmax())
        if overlaps[image][detection, best] >= iou_match and not claimed[image][best]:
            claimed[image][best] = True
            hits[k] = 1.0
    return np.array([entry[0] for entry in entries]), hits


def precision_recall(hits: FloatArray, n_ground_truth: int) -> tuple[FloatArray, FloatArray]:
    """Cumulative precision and recall after each detection of a score-sorted hit list."""
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    recall = true_positives / max(n_ground_truth, 1)
    return precision, recall


def average_precision(precision: FloatArray, recall: FloatArray) -> float:
    """All-point interpolated AP: the area under the curve made monotone from the right (VOC 2010+)."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at this recall or beyond
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def operating_point(scores: FloatArray, hits: FloatArray, n_ground_truth: int, conf: float) -> dict[str, float]:
    """Counts, precision, recall and F1 of the detections scoring at least ``conf``."""
    kept = scores >= conf
    tp, fp = int(hits[kept].sum()), int((1 - hits[kept]).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_ground_truth if n_ground_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"tp": tp, "fp": fp, "fn": n_ground_truth - tp, "precision": precision, "recall": recall, "f1": f1}


def best_f1(scores: FloatArray, hits: FloatArray, n_ground_truth: int) -> tuple[float, float]:
    """The highest F1 over all score thresholds, and the threshold (a detection's score) that reaches it."""
    if len(scores) == 0 or n_ground_truth == 0:
        return 0.0, 1.0
    precision, recall = precision_recall(hits, n_ground_truth)
    f1 = np.divide(
        2 * precision * recall, precision + recall, out=np.zeros_like(precision), where=precision + recall > 0
    )
    best = int(f1.argmax())
    return (float(f1[best]), float(scores[best])) if f1[best] > 0 else (0.0, 1.0)


def detection_metrics(results: Sequence[ImageResult], conf: float, iou_match: float) -> dict[str, Any]:
    """AP50-style metrics at ``iou_match``, the operating point at ``conf``, best F1, and the PR curve."""
    n_ground_truth = sum(len(r.ground_truth) for r in results)
    scores, hits = match_detections(results, iou_match)
    precision, recall = precision_recall(hits, n_ground_truth)
    f1, f1_conf = best_f1(scores, hits, n_ground_truth)
    at_conf = operating_point(scores, hits, n_ground_truth, conf)
    return {
        "n_images": len(results),
        "n_faces": n_ground_truth,
        "iou_match": iou_match,
        "ap": average_precision(precision, recall),
        "conf": conf,
        **at_conf,
        "best_f1": f1,
        "best_f1_conf": f1_conf,
        "pr_curve": {"precision": precision.tolist(), "recall": recall.tolist(), "scores": scores.tolist()},
    }


def read_boxes(boxes_json: Path, split: str | None = None) -> dict[str, FloatArray]:
    """Ground truth per image name as (G, 4) x1, y1, x2, y2; all images, or those of one split."""
    entries = json.loads(boxes_json.read_text())
    return {
        name: xywh_to_xyxy(entry["boxes_xywh"])
        for name, entry in sorted(entries.items())
        if split is None or entry.get("split") == split
    }


def detect_all(
    detector: FaceDetector,
    images_dir: Path,
    truth: dict[str, FloatArray],
    imgsz: int,
    iou: float,
    min_size: float = 0.0,
) -> list[ImageResult]:
    """Run the detector on each photo, one at a time, at the curve's low confidence floor."""
    results = []
    for name, ground_truth in truth.items():
        with Image.open(images_dir / name) as image:
            request = DetectRequest(
                image=image.convert("RGB"), conf=CURVE_CONF, iou=iou, max_det=300, imgsz=imgsz, min_size=min_size
            )
            (detections,) = detector.predict([request])
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in detections], dtype=np.float64)
        results.append(ImageResult(name, ground_truth, boxes, scores))
    return results


def evaluate_detector(
    artifact_folder: Path,
    boxes_json: Path,
    images_dir: Path,
    conf: float | None = None,
    iou_match: float = 0.5,
    split: str | None = None,
    imgsz: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Metrics of the artifact as served, on the photos of ``boxes_json`` (all of them unless ``split``).

    ``conf`` defaults to the artifact's shipped default, ``imgsz`` to its input size. The result holds
    ``pr_curve`` and per-image ``results`` besides the metrics.
    """
    manifest = load_artifact(artifact_folder)
    detector = FaceDetector.from_artifact(artifact_folder, manifest, torch.device(device))
    conf = float(manifest.defaults.get("conf", 0.25)) if conf is None else conf
    imgsz = imgsz or (manifest.input.size if manifest.input else 640)
    iou = float(manifest.defaults.get("iou", 0.45))
    results = detect_all(detector, images_dir, read_boxes(boxes_json, split), imgsz, iou)
    metrics = detection_metrics(results, conf, iou_match)
    model = f"{manifest.name}/{manifest.version}"
    return {"model": model, "split": split or "all", "imgsz": imgsz, **metrics, "results": results}


def draw_detections(image: Image.Image, result: ImageResult, conf: float) -> Image.Image:
    """The photo with ground truth in green and detections scoring at least ``conf`` in red, with scores."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    for box in result.ground_truth:
        draw.rectangle(tuple(box), outline=(0, 200, 0), width=width)
    for box, score in zip(result.boxes, result.scores, strict=True):
        if score >= conf:
            draw.rectangle(tuple(box), outline=(230, 20, 20), width=width)
            draw.text((box[0] + width, box[1] + width), f"{score:.2f}", fill=(230, 20, 20))
    return canvas


def plot_precision_recall(pr_curve: dict[str, list[float]], ap: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    axes.plot(pr_curve["recall"], pr_curve["precision"], label=f"AP = {ap:.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision–recall")
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_detector_card(
    out_dir: Path,
    metrics: dict[str, Any],
    pr_curve: dict[str, list[float]],
    sample_images: Sequence[tuple[Image.Image, ImageResult]],
    header: Sequence[str] = (),
    *,
    figures: Path,
) -> Path:
    """Write ``MODEL_CARD.md`` with a metrics table and the PR curve PNG into ``out_dir``; return it.

    The sample detections, drawn on the photos, go into ``figures`` (never ``out_dir``: they show ../shared's photos).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    title = metrics.get("model", "face detector")
    lines = [
        f"# Model card: {title}",
        "",
        *header,
        "",
        f"## Metrics ({metrics.get('split', 'all')} photos)",
        "",
    ]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in card_rows(metrics)]
    plot_precision_recall(pr_curve, float(metrics.get("ap", 0.0)), out_dir / PR_CURVE_PNG)
    lines += ["", f"![precision-recall curve]({PR_CURVE_PNG})", "", "## Sample detections", ""]
    lines += ["Green: hand-drawn ground truth. Red: detections at the operating confidence, with scores.", ""]
    names = [f"sample_{Path(result.name).stem}.png" for _, result in sample_images]
    if names:
        figures.mkdir(parents=True, exist_ok=True)
    drop_from_artifact(out_dir, names)
    for name, (image, result) in zip(names, sample_images, strict=True):
        draw_detections(image, result, float(metrics.get("conf", 0.25))).save(figures / name)
        lines.append(f"- `{name}`: {result.name}")
    if names:
        lines += ["", not_shipped(names, EVAL_COMMAND, str(title))]
    path = out_dir / CARD_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


def card_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    names = {
        "ap": f"AP at IoU {metrics.get('iou_match', 0.5)} (all-point, VOC)",
        "best_f1_conf": "conf of best F1",
    }
    return [
        (names.get(key, key), value)
        for key, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def write_card_for(
    evaluation: dict[str, Any],
    images_dir: Path,
    out_dir: Path,
    samples: int = 4,
    header: Sequence[str] = (),
    *,
    figures: Path,
) -> Path:
    """The card of an ``evaluate_detector`` result, with detections drawn on its first ``samples`` photos into
    ``figures``."""
    results: list[ImageResult] = evaluation["results"][:samples]
    pictures = []
    for result in results:
        with Image.open(images_dir / result.name) as image:
            pictures.append((image.convert("RGB"), result))
    metrics = {k: v for k, v in evaluation.items() if k not in ("pr_curve", "results")}
    return write_detector_card(out_dir, metrics, evaluation["pr_curve"], pictures, header, figures=figures)
