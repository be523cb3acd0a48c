"""An honest operating point for a detector artifact, its numbers beside the teacher's, and its model card.

The shipped ``conf`` and ``imgsz`` are chosen on the ``train`` photos of face-boxes only: a table of
precision, recall and F1 per input size and confidence, with each size's latency on a 1280×720 photo,
and the best F1 among the sizes within the latency budget. Only then are the ``test`` photos and all
nine measured, at that one point, beside the teacher on the same photos.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.artifact import load_artifact, repack_artifact, write_manifest
from models.detector.evaluate import (
    ImageResult,
    detect_all,
    detection_metrics,
    match_detections,
    operating_point,
    read_boxes,
)
from models.detector.predictor import FaceDetector
from models.detector.teacher import FaceTeacher
from models.detector.types import Detection, DetectRequest

CONF_GRID = tuple(round(0.05 * k, 2) for k in range(2, 19))  # 0.10 ... 0.90
Predict = Callable[[list[DetectRequest]], list[list[Detection]]]


@dataclass(frozen=True)
class OperatingPoint:
    imgsz: int
    conf: float
    f1: float
    precision: float
    recall: float
    latency_ms: float
    within_budget: bool  # False: no size met the budget on this machine (a busy CPU?), best F1 of all sizes


def open_predictor(artifact: Path, backend: str, device: str = "cpu") -> Predict:
    """The artifact's ``predict`` on torch, or on OpenVINO / ONNX Runtime from an exported copy of it."""
    manifest = load_artifact(artifact)
    if backend == "torch":
        return FaceDetector.from_artifact(artifact, manifest, torch.device(device)).predict
    from models.detector.onnx_predictor import OnnxFaceDetector
    from models.detector.types import ONNX_FILE
    from models.onnx_backend import Runtime

    if ONNX_FILE not in {entry.path for entry in manifest.files}:
        from models.onnx_export import export_artifact

        copy = Path(tempfile.mkdtemp(prefix="deepcanvas-report-")) / artifact.name
        shutil.copytree(artifact, copy)
        manifest, artifact = export_artifact(copy), copy
    runtime = Runtime(engine="openvino" if backend == "openvino" else "onnxruntime")
    return OnnxFaceDetector.from_artifact(artifact, manifest, device, runtime).predict


def latency_ms(predict: Predict, imgsz: int, repeats: int = 7) -> float:
    """Median milliseconds to detect faces in one 1280×720 photo at ``imgsz`` (after one warm-up call)."""
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8))
    request = DetectRequest(image=photo, conf=0.25, iou=0.45, max_det=300, imgsz=imgsz)
    predict([request])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict([request])
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def sweep_rows(results: Sequence[ImageResult], imgsz: int, latency: float) -> list[dict[str, Any]]:
    """One row per confidence of ``CONF_GRID``: precision, recall, F1 and counts at that size."""
    n_faces = sum(len(r.ground_truth) for r in results)
    scores, hits = match_detections(results, 0.5)
    return [
        {"imgsz": imgsz, "conf": conf, "latency_ms": latency, **operating_point(scores, hits, n_faces, conf)}
        for conf in CONF_GRID
    ]


def choose_operating_point(rows: Sequence[dict[str, Any]], max_latency_ms: float) -> OperatingPoint:
    """Best F1 among sizes within the latency budget; ties go to higher recall, then to the smaller size."""
    allowed = [row for row in rows if row["latency_ms"] <= max_latency_ms]
    best = max(allowed or rows, key=lambda row: (round(row["f1"], 4), round(row["recall"], 4), -row["imgsz"]))
    keys = ("imgsz", "conf", "f1", "precision", "recall", "latency_ms")
    return OperatingPoint(**{key: best[key] for key in keys}, within_budget=bool(allowed))


def teacher_results(teacher: FaceTeacher, boxes_json: Path, images: Path, split: str | None) -> list[ImageResult]:
    """The teacher's raw boxes (its own framing) on the photos, like ``detect_all``'s results."""
    results = []
    for name, truth in read_boxes(boxes_json, split).items():
        with Image.open(images / name) as photo:
            detections = teacher.detect(photo.convert("RGB"))
        results.append(ImageResult(name, truth, detections.boxes.astype(np.float64), detections.scores.astype(float)))
    return results


def summarize(results: Sequence[ImageResult], conf: float) -> dict[str, Any]:
    metrics = detection_metrics(results, conf, 0.5)
    keys = ("n_images", "n_faces", "ap", "conf", "precision", "recall", "f1", "tp", "fp", "fn")
    return {key: metrics[key] for key in keys}


def detector_report(
    artifact: Path,
    boxes_json: Path,
    images: Path,
    sizes: Sequence[int],
    teacher_path: Path | None,
    backend: str = "openvino",
    max_latency_ms: float = 60.0,
    min_size: float = 0.0,
) -> dict[str, Any]:
    """The sweep on the train photos, the chosen point, and the test / all numbers of the model and the teacher.

    ``min_size`` (the shipped smallest face side, original pixels) applies throughout; the chosen point's numbers
    without it are reported beside, under ``without_min_size``.
    """
    manifest = load_artifact(artifact)
    iou = float(manifest.defaults.get("iou", 0.45))
    detector = FaceDetector.from_artifact(artifact, manifest, torch.device("cpu"))  # accuracy: the reference backend
    timed_predict = open_predictor(artifact, backend)  # latency: the backend the service will run
    rows = []
    for imgsz in sizes:
        train = detect_all(detector, images, read_boxes(boxes_json, "train"), imgsz, iou, min_size)
        rows += sweep_rows(train, imgsz, latency_ms(timed_predict, imgsz))
    point = choose_operating_point(rows, max_latency_ms)
    report: dict[str, Any] = {"model": f"{manifest.name}/{manifest.version}", "backend": backend, "sweep": rows}
    report["operating_point"] = point.__dict__ | {"chosen_on": "face-boxes train photos", "budget_ms": max_latency_ms}
    report["operating_point"]["min_size"] = min_size
    report["results"], report["without_min_size"] = {}, {}
    for split in ("train", "test", None):
        results = detect_all(detector, images, read_boxes(boxes_json, split), point.imgsz, iou, min_size)
        report[split or "all"] = summarize(results, point.conf)
        report["results"][split or "all"] = results
        if min_size > 0:
            unfiltered = detect_all(detector, images, read_boxes(boxes_json, split), point.imgsz, iou)
            report["without_min_size"][split or "all"] = summarize(unfiltered, point.conf)
    report["pr_curve"] = detection_metrics(report["results"]["all"], point.conf, 0.5)["pr_curve"]
    if teacher_path is not None:
        teacher = FaceTeacher.from_onnx(teacher_path)
        train = teacher_results(teacher, boxes_json, images, "train")
        scores, hits = match_detections(train, 0.5)
        n_faces = sum(len(r.ground_truth) for r in train)
        teacher_conf = max(CONF_GRID, key=lambda c: operating_point(scores, hits, n_faces, c)["f1"])
        report["teacher"] = {"file": teacher_path.name, "conf_chosen_on_train": teacher_conf}
        for split in ("test", None):
            report["teacher"][split or "all"] = summarize(
                teacher_results(teacher, boxes_json, images, split), teacher_conf
            )
        all_results = teacher_results(teacher, boxes_json, images, None)
        report["teacher"]["pr_curve"] = detection_metrics(all_results, teacher_conf, 0.5)["pr_curve"]
    return report


def sweep_table(rows: Sequence[dict[str, Any]], confs: Sequence[float] = (0.25, 0.4, 0.5, 0.6, 0.7)) -> list[str]:
    """Markdown rows of the sweep at a few confidences."""
    lines = ["| imgsz | latency 1280×720 (ms) | conf | precision | recall | F1 | TP | FP | FN |", "|---" * 9 + "|"]
    for row in rows:
        if any(abs(row["conf"] - c) < 1e-9 for c in confs):
            lines.append(
                f"| {row['imgsz']} | {row['latency_ms']:.1f} | {row['conf']:.2f} | {row['precision']:.3f} | "
                f"{row['recall']:.3f} | {row['f1']:.3f} | {row['tp']} | {row['fp']} | {row['fn']} |"
            )
    return lines


def apply_operating_point(artifact: Path, report: dict[str, Any]) -> None:
    """Ship the chosen ``conf`` and ``imgsz`` as the artifact's defaults; record the test / all numbers as metrics."""
    manifest = load_artifact(artifact)
    point = report["operating_point"]
    metrics = dict(manifest.metrics)
    for split in ("test", "all"):
        for key in ("ap", "precision", "recall", "f1", "tp", "fp", "fn", "n_faces"):
            metrics[f"face_boxes_{split}_{'ap50' if key == 'ap' else key}"] = float(report[split][key])
    hyperparameters = {**manifest.hyperparameters, "operating_point": point}
    assert manifest.input is not None, "a detector manifest records its input size"
    update = {
        "defaults": {**manifest.defaults, "conf": point["conf"], "min_size": point.get("min_size", 0.0)},
        "input": manifest.input.model_copy(update={"size": point["imgsz"]}),
        "metrics": metrics,
        "hyperparameters": hyperparameters,
    }
    write_manifest(artifact, manifest.model_copy(update=update))
    rehash(artifact)


def rehash(folder: Path) -> None:
    """List and hash every file of the artifact folder (the card and its chart included) in its manifest."""
    repack_artifact(folder)  # from the unverified manifest: the card's files are new
    load_artifact(folder)
