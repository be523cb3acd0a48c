"""``deepcanvas models quantize-detector``: the detector's int8 ONNX file, calibrated on its training photos and
shipped only when AP50 on the face-boxes train photos (the validation measure for now) drops by at most 0.5 points.

Calibration inputs are the arrays the served ONNX predictor feeds its network (letterboxed at the manifest's
input size) for the crowd photos the detector was trained on (those ``real_photos.is_validation`` keeps out of
its validation share). AP50, precision and recall at the shipped ``conf`` are measured through the served
ONNX predictor (ONNX Runtime) on the face-boxes ``train`` photos, float and int8 alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import typer
from PIL import Image

from models.artifact import load_artifact
from models.detector.evaluate import detect_all, detection_metrics, read_boxes
from models.detector.onnx_predictor import OnnxFaceDetector
from models.detector.pipeline import detect
from models.detector.real_photos import is_validation
from models.detector.types import ONNX_FILE, DetectRequest
from models.onnx_backend import Runtime
from models.quantize import QuantizationResult, quantize_artifact

# The Detect head decodes boxes with element-wise arithmetic on pixel coordinates (and SiLU is x·sigmoid(x)):
# those stay float, as in ultralytics' own OpenVINO int8 export; the convolutions run in int8.
HEAD_TYPES = ("Mul", "Sub", "Add", "Div", "Sigmoid", "Concat")
VAL_FRACTION = 0.1  # the share of real photos the training kept for validation (deepcanvas data detector-mixed)


def calibration_inputs(folder: Path, photos: list[Path]) -> list[np.ndarray]:
    """The network inputs the served predictor makes of ``photos`` at the manifest's defaults."""
    manifest = load_artifact(folder)
    detector = OnnxFaceDetector.from_artifact(folder, manifest, "cpu", Runtime())
    inputs: list[np.ndarray] = []

    def recording(images: np.ndarray) -> np.ndarray:
        inputs.append(images.copy())
        return detector.session.run(images)

    size = manifest.input.size if manifest.input else 640
    for path in photos:
        with Image.open(path) as photo:
            request = DetectRequest(photo.convert("RGB"), 0.25, 0.45, 300, size)
            detect([request], detector.stride, detector.labels, recording)  # the predictor's own pipeline
    return inputs


def served_metrics(folder: Path, boxes_json: Path, images: Path, int8: bool) -> dict[str, Any]:
    manifest = load_artifact(folder)
    detector = OnnxFaceDetector.from_artifact(folder, manifest, "cpu", Runtime(int8=int8))
    size, iou = manifest.input.size if manifest.input else 640, float(manifest.defaults.get("iou", 0.45))
    min_size = float(manifest.defaults.get("min_size", 0.0))
    truth = read_boxes(boxes_json, "train")
    results = detect_all(cast(Any, detector), images, truth, size, iou, min_size)  # any predictor with .predict
    metrics = detection_metrics(results, float(manifest.defaults.get("conf", 0.25)), 0.5)
    return {key: metrics[key] for key in ("ap", "precision", "recall")}


def quantize_detector(
    folder: Path, photos: Path, boxes_json: Path, images: Path
) -> tuple[QuantizationResult, dict[str, Any]]:
    train_photos = [p for p in sorted(photos.glob("*.jpg")) if not is_validation(p, VAL_FRACTION)]
    batches = calibration_inputs(folder, train_photos)
    measured: dict[str, Any] = {}

    def score(int8: bool) -> float:
        measured["int8" if int8 else "float32"] = served_metrics(folder, boxes_json, images, int8)
        return float(measured["int8" if int8 else "float32"]["ap"])

    result = quantize_artifact(
        folder, [ONNX_FILE], lambda _: batches, score, "face_boxes_train_ap50", ignored_types=HEAD_TYPES
    )
    return result, measured


def quantize_command(
    folder: Annotated[Path, typer.Argument(help="A local detector artifact with model.onnx", file_okay=False)],
    photos: Annotated[Path, typer.Argument(help="The crowd photos the detector trained on (calibration)")],
    boxes_json: Annotated[Path, typer.Argument(help="face-boxes boxes.json (its train photos measure)")],
    images: Annotated[Path, typer.Argument(help="face-boxes images folder")],
) -> None:
    """Add an int8 model.onnx twin (NNCF) when AP50 on the face-boxes train photos drops <= 0.5 points."""
    result, measured = quantize_detector(folder, photos, boxes_json, images)
    typer.echo(f"{result.metric}: {json.dumps(measured)}; drop {result.drop_points:.2f} points; {result.verdict}")
