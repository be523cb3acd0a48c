"""Run a detector artifact over the validation photos, as the service runs it, and time a 1280×720 photo.

Each artifact runs through its own served predictor (``FaceDetector``/``OnnxFaceDetector`` for YOLO,
``RfbFaceDetector`` for the imported RFB), with the tiling of the shared pipeline, on the backend asked
for; the RFB has no torch network, so ``torch`` runs it on ONNX Runtime, as the service does.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.artifact import load_artifact
from models.detector.rfb_predictor import RfbFaceDetector, ships_as_onnx
from models.detector.types import Detection, DetectRequest
from models.detector.validation.metrics import PhotoResult
from models.onnx_backend import Runtime

Predict = Callable[[list[DetectRequest]], list[list[Detection]]]
CURVE_CONF = 0.05  # detections kept for the curves and the reliability table
LATENCY_PHOTO = "data/crowd-photos/26.jpg"  # a real group photo, resized to 1280×720 for the timing


def open_detector(artifact: Path, backend: str) -> Predict:
    """The artifact's ``predict`` on ``backend`` (torch, onnx, openvino), as the service would build it."""
    manifest = load_artifact(artifact)
    if ships_as_onnx(manifest):
        runtime = Runtime(engine="openvino" if backend == "openvino" else "onnxruntime")
        return RfbFaceDetector.from_artifact(artifact, manifest, "cpu", runtime).predict
    from models.detector.report import open_predictor

    return open_predictor(artifact, backend)


def request(image: Image.Image, settings: dict[str, Any], conf: float, min_size: float = 0.0) -> DetectRequest:
    return DetectRequest(
        image=image,
        conf=conf,
        iou=float(settings["iou"]),
        max_det=int(settings.get("max_det", 300)),
        imgsz=int(settings["imgsz"]),
        min_size=min_size,
        tile=str(settings["tile"]),
        tile_above=float(settings.get("tile_above", 1.5)),
    )


def run_photos(
    predict: Predict, shared: Path, photos: dict[str, dict[str, Any]], settings: dict[str, Any]
) -> list[PhotoResult]:
    """Every photo's detections down to ``CURVE_CONF``, without a size floor (the metrics apply one)."""
    results = []
    for name, entry in photos.items():
        with Image.open(shared / name) as opened:
            image = opened.convert("RGB")
        found = predict([request(image, settings, CURVE_CONF)])[0]
        results.append(
            PhotoResult(
                name=name,
                faces=np.array(entry["faces"], dtype=np.float64).reshape(-1, 4),
                ignore=np.array(entry["ignore"], dtype=np.float64).reshape(-1, 4),
                boxes=np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4),
                scores=np.array([d.score for d in found], dtype=np.float64),
            )
        )
    return results


def latency_ms(
    predict: Predict, shared: Path, settings: dict[str, Any], conf: float, repeats: int = 9
) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds for one 1280×720 group photo at ``settings`` (tiling included).

    The CPU time (every thread of this process) is the budget measure: this machine's cores are shared with
    training runs, which stretch the wall-clock by a varying factor; a 2-thread engine on idle cores answers
    in at most its CPU time.
    """
    with Image.open(shared / LATENCY_PHOTO) as opened:
        image = opened.convert("RGB").resize((1280, 720), Image.Resampling.BILINEAR)
    one = request(image, settings, conf, float(settings.get("min_size", 24.0)))
    predict([one])
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        predict([one])
        wall.append(1000 * (time.perf_counter() - start))
        cpu.append(1000 * (time.process_time() - start_cpu))
    return statistics.median(wall), statistics.median(cpu)
