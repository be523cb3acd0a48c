"""Measure the mapping from our detector's boxes to dlib's HOG boxes (the boxes the 5-point model expects).

On the ``choose`` half of LFW identities: for every image where both detectors find the central face,
the median offset of the HOG box's centre (in units of our box's size) and the median ratio of its sides.
Then the landmarks through our box (mapped, one or two passes) are compared with the landmarks on the
HOG box (our port, which matches dlib's to a pixel), in units of the distance between the eye centres,
on both halves; the number of passes is chosen on ``choose``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from models.identity.collect import central_box
from models.identity.lfw import half, person
from models.identity.pipeline import BoxMapping, FacePipeline


def matched_boxes(
    detections: dict[str, list], hog: dict[str, list], keys: list[str], shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple]:
    """Per image, (our central box, the HOG box overlapping it most) where both exist and overlap."""
    pairs = {}
    for key in keys:
        ours = central_box(detections.get(key, []), shapes[key])
        if ours is None or not hog.get(key):
            continue
        best = max(hog[key], key=lambda h: iou(ours[:4], h))
        if iou(ours[:4], best) > 0.3:
            pairs[key] = (np.array(ours[:4], float), np.array(best, float))
    return pairs


def iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def fit_mapping(pairs: dict[str, tuple]) -> BoxMapping:
    ours = np.array([p[0] for p in pairs.values()])
    hog = np.array([p[1] for p in pairs.values()])
    size = ours[:, 2:] - ours[:, :2]
    offset = np.median(((hog[:, :2] + hog[:, 2:]) / 2 - (ours[:, :2] + ours[:, 2:]) / 2) / size, 0)
    scale = np.median((hog[:, 2:] - hog[:, :2]) / size, 0)
    return BoxMapping(
        (round(float(offset[0]), 4), round(float(offset[1]), 4)), (round(float(scale[0]), 4), round(float(scale[1]), 4))
    )


Loader = Callable[[str], np.ndarray]


def landmark_error(pipeline: FacePipeline, load: Loader, pairs: dict[str, tuple]) -> float:
    """Mean point error of the detector-box landmarks against the HOG-box landmarks, in inter-eye distances."""
    errors = []
    for key, (ours, hog) in pairs.items():
        image = load(key)
        reference = pipeline.landmarks.predict(image, hog[None])[0]
        got = pipeline.points(image, ours[None])[0]
        eyes = np.linalg.norm(reference[:2].mean(0) - reference[2:4].mean(0))
        errors.append(np.linalg.norm(got - reference, axis=1).mean() / eyes)
    return float(np.mean(errors))


def measure_mapping(
    pipeline: FacePipeline,
    load: Loader,
    shapes: Mapping[str, tuple[int, ...]],
    detections: dict[str, list],
    hog: dict[str, list],
) -> dict[str, Any]:
    """The mapping (offset, scale, passes) chosen on ``choose``, and the landmark errors on both halves.

    ``shapes`` gives every image's (rows, cols); ``load`` reads an image as (H, W, 3) uint8.
    """
    halves = {name: [k for k in shapes if half(person(k)) == name] for name in ("choose", "report")}
    pairs = {name: matched_boxes(detections, hog, keys, shapes) for name, keys in halves.items()}
    fitted = fit_mapping(pairs["choose"])
    candidates = {
        "identity": BoxMapping(),
        "mapped, 1 pass": fitted,
        "mapped, 2 passes": BoxMapping(fitted.offset, fitted.scale, 2),
    }
    errors = {
        label: {
            name: landmark_error(FacePipeline(pipeline.landmarks, mapping, False), load, pairs[name]) for name in pairs
        }
        for label, mapping in candidates.items()
    }
    chosen = min(("mapped, 1 pass", "mapped, 2 passes"), key=lambda label: errors[label]["choose"])
    mapping = candidates[chosen]
    return {
        "box_mapping": {"offset": list(mapping.offset), "scale": list(mapping.scale), "passes": mapping.passes},
        "landmark_error": errors,
        "matched_images": {name: len(p) for name, p in pairs.items()},
        "chosen": chosen,
    }
