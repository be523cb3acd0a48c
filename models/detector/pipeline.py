"""The detector's work around the network, shared by the torch and the ONNX predictors; torch-free.

``letterbox -> forward -> non_max_suppression -> unletterbox``. Each image is letterboxed onto the
smallest stride-aligned rectangle around it (not the whole square), and requests whose canvases have
the same shape run as one batched forward; each keeps its own confidence, IoU and ``max_det`` thresholds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from PIL import Image

from models.artifact import ArtifactError, Manifest
from models.detector.boxes import Letterbox, canvas_shape, letterbox, non_max_suppression, unletterbox
from models.detector.types import Detection, DetectRequest

# (B, 3, H, W) float32 letterboxed images in [0, 1] -> (B, 4 + nc, A) decoded head output.
Forward = Callable[[np.ndarray], np.ndarray]


def check_detector_manifest(manifest: Manifest) -> None:
    """Refuse a manifest that is not a detector with one label per class."""
    nc = manifest.hyperparameters.get("nc", len(manifest.labels))
    if manifest.task != "detect" or not manifest.labels or nc != len(manifest.labels):
        raise ArtifactError(f"{manifest.name}/{manifest.version}: not a detector with one label per class")


def input_size(imgsz: int, stride: int) -> int:
    """The network input side for a requested ``imgsz``: rounded up to a multiple of the stride.

    The head's coarsest grid has one cell per ``stride`` pixels, so other sides would be cropped.
    """
    assert imgsz > 0, f"imgsz must be positive, got {imgsz}"
    return max(1, math.ceil(imgsz / stride)) * stride


def group_by_canvas(batch: list[DetectRequest], stride: int) -> dict[tuple[int, int, int], list[int]]:
    """Request indices by (input size, canvas height, canvas width): each group is one batched forward."""
    groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for index, request in enumerate(batch):
        # never upscale past the photo's own longest side (rounded up to the stride): a small portrait's face,
        # blown up, grows beyond the faces the detector was trained on (ultralytics' scaleup=False)
        size = input_size(min(request.imgsz, max(request.image.size)), stride)
        groups[(size, *canvas_shape(*request.image.size, size, stride))].append(index)
    return groups


def detect(batch: list[DetectRequest], stride: int, labels: list[str], forward: Forward) -> list[list[Detection]]:
    """Detections for each request, in order; one ``forward`` per distinct canvas shape."""
    results: dict[int, list[Detection]] = {}
    for (size, _, _), indices in group_by_canvas(batch, stride).items():
        group = [batch[i] for i in indices]
        results.update(zip(indices, detect_same_size(group, size, stride, labels, forward), strict=True))
    return [results[i] for i in range(len(batch))]


def detect_same_size(
    group: list[DetectRequest], size: int, stride: int, labels: list[str], forward: Forward
) -> list[list[Detection]]:
    canvases, placements = zip(*(letterbox(request.image, size, stride) for request in group), strict=True)
    pred = forward(np.stack(canvases))  # (B, 4 + nc, A)
    assert pred.shape[1] == 4 + len(labels), f"head gives {pred.shape[1] - 4} classes for {len(labels)} labels"
    return [
        to_detections(pred[i : i + 1], request, placement, labels)
        for i, (request, placement) in enumerate(zip(group, placements, strict=True))
    ]


def to_detections(pred: np.ndarray, request: DetectRequest, placement: Letterbox, labels: list[str]) -> list[Detection]:
    """NMS with the request's own thresholds on one image's (1, 4 + nc, A), then boxes in original pixels."""
    (kept,) = non_max_suppression(pred, request.conf, request.iou, request.max_det)  # (n, 6)
    boxes = unletterbox(kept[:, :4], placement).tolist()
    scores, classes = kept[:, 4].tolist(), kept[:, 5].astype(np.int64).tolist()
    return [
        Detection(box=(x1, y1, x2, y2), score=score, label=labels[label])
        for (x1, y1, x2, y2), score, label in zip(boxes, scores, classes, strict=True)
        if min(x2 - x1, y2 - y1) >= request.min_size
    ]


def warmup_request(stride: int) -> DetectRequest:
    """A tiny grey request, so the first real one does not pay for lazy initialisation."""
    image = Image.new("RGB", (2 * stride, 2 * stride), (114, 114, 114))
    return DetectRequest(image=image, conf=0.25, iou=0.45, max_det=1, imgsz=2 * stride)
