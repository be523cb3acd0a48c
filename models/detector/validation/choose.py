"""Choose an artifact's defaults on the validation set, and measure it there and on face-boxes.

For each input size the artifact allows (YOLO: several; the RFB export: its fixed input) and each tiling
mode, the photos run once down to a low score; the best-F1 ``conf`` on faces of 24 px or more is found,
and a 1280×720 group photo is timed at it. The defaults are the configuration with the best F1 within
the latency budget. The 4 content portraits, the crowds and the photos no YOLO version ever saw get their
own lines; the hand-drawn face-boxes photos are the independent check (the teacher drew this set's boxes,
so the RFB's own numbers here are optimistic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.artifact import load_artifact
from models.detector.evaluate import read_boxes
from models.detector.rfb_predictor import ships_as_onnx
from models.detector.validation.metrics import (
    PhotoResult,
    ap50,
    at_conf,
    best_conf,
    by_band,
    match_all,
    reliability,
    short_side,
)
from models.detector.validation.runner import Predict, latency_ms, open_detector, run_photos

MIN_FACE = 24.0  # the served min_size: faces (and boxes) smaller than this are not evaluated
CROWD_MIN_FACE = 32.0
CONF_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))
YOLO_SIZES = (320, 480, 640)
TILINGS = ({"tile": "off"}, {"tile": "auto", "tile_above": 1.5}, {"tile": "auto", "tile_above": 2.0})


def configurations(manifest: Any, sizes: tuple[int, ...] = YOLO_SIZES) -> list[dict[str, Any]]:
    """Every (input size, tiling) to try: the RFB export has one input size, YOLO takes ``sizes``."""
    chosen = [int(manifest.hyperparameters["input_width"])] if ships_as_onnx(manifest) else list(sizes)
    iou = float(manifest.defaults.get("iou", 0.45))
    return [{"imgsz": s, **t, "iou": iou, "max_det": 300} for s in chosen for t in TILINGS]


def sweep(
    predict: Predict, shared: Path, photos: dict[str, dict[str, Any]], configs: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], list[PhotoResult]]]:
    """One row per configuration: its best conf, F1 there, AP50 and the 1280×720 latency at that conf."""
    rows = []
    for settings in configs:
        results = run_photos(predict, shared, photos, settings)
        matched = match_all(results, MIN_FACE)
        conf = best_conf(matched, CONF_GRID)
        row = {**settings, "conf": conf, "ap50": ap50(matched), **at_conf(matched, conf)}
        row["wall_ms"], row["latency_ms"] = latency_ms(predict, shared, settings, conf)
        rows.append((row, results))
    return rows


def choose(rows: list[dict[str, Any]], max_latency_ms: float) -> dict[str, Any]:
    """Best F1 within the budget (ties: the faster); the fastest row when none fits."""
    allowed = [row for row in rows if row["latency_ms"] <= max_latency_ms]
    if not allowed:
        return min(rows, key=lambda row: row["latency_ms"])
    return max(allowed, key=lambda row: (round(row["f1"], 3), -row["latency_ms"]))


def subset(results: list[PhotoResult], keep: Any) -> list[PhotoResult]:
    return [r for r in results if keep(r.name)]


def details(results: list[PhotoResult], photos: dict[str, dict[str, Any]], conf: float) -> dict[str, Any]:
    """Everything the report shows for the chosen configuration."""
    matched = match_all(results, MIN_FACE)
    crowds = match_all(subset(results, lambda n: "crowd-photos" in n), CROWD_MIN_FACE)
    unseen = match_all(subset(results, lambda n: not photos[n].get("seen_by_v3")), MIN_FACE)
    portraits = {
        Path(r.name).stem: int(((r.scores >= conf) & (short_side(r.boxes) >= MIN_FACE)).sum())
        for r in subset(results, lambda n: "style-transfer/content" in n)
    }
    return {
        "all": {"ap50": ap50(matched), **at_conf(matched, conf)},
        "unseen_by_v3": {"ap50": ap50(unseen), **at_conf(unseen, conf)},
        "crowds_32px": at_conf(crowds, conf),
        "portrait_boxes": portraits,
        "bands_min_size_0": by_band(match_all(results, 0.0), conf),
        "reliability": reliability(matched),
        "conf_0.5": at_conf(matched, 0.5),
        "photos": len(results),
        "faces": len(matched.face_sides),
    }


def face_boxes_check(predict: Predict, boxes_json: Path, settings: dict[str, Any], conf: float) -> dict[str, Any]:
    """The 9 hand-drawn face-boxes photos at the chosen defaults (no ignore regions: every face drawn)."""
    photos = {name: {"faces": truth.tolist(), "ignore": []} for name, truth in read_boxes(boxes_json).items()}
    results = run_photos(predict, boxes_json.parent / "images", photos, settings)
    matched = match_all(results, MIN_FACE)
    return {"ap50": ap50(matched), **at_conf(matched, conf), "photos": len(results)}


def evaluate_artifact(
    artifact: Path,
    shared: Path,
    photos: dict[str, dict[str, Any]],
    backend: str,
    max_latency_ms: float,
    face_boxes: Path | None,
    sizes: tuple[int, ...] = YOLO_SIZES,
) -> dict[str, Any]:
    manifest = load_artifact(artifact)
    predict = open_detector(artifact, backend)
    swept = sweep(predict, shared, photos, configurations(manifest, sizes))
    rows = [row for row, _ in swept]
    chosen = choose(rows, max_latency_ms)
    results = next(results for row, results in swept if row is chosen)
    report = {
        "artifact": f"{manifest.name}/{manifest.version}",
        "architecture": manifest.architecture,
        "backend": backend,
        "max_latency_ms": max_latency_ms,
        "sweep": rows,
        "chosen": chosen,
        "details": details(results, photos, chosen["conf"]),
    }
    if face_boxes is not None:
        report["face_boxes"] = face_boxes_check(predict, face_boxes, chosen, chosen["conf"])
    return report


def nan_to_none(value: Any) -> Any:
    """JSON has no NaN: an empty band's precision becomes null."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return None if isinstance(value, float) and np.isnan(value) else value
