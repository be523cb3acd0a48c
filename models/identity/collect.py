"""Run the pipeline over every LFW image once and cache what the evaluation needs under a cache folder.

- ``detections.json``: our detector's boxes (x1, y1, x2, y2, score) per image (keyed by the detector's sha256);
- ``hog.json``: dlib's HOG detector's boxes per image (the box convention dlib's shape predictor was trained
  on; dlib is a test/measurement dependency only), for measuring the box mapping;
- ``descriptors-<key>.npz``: per image, the face nearest the image centre: landmarks and raw descriptors of
  its chip and of the mirrored chip (keyed by the artifact's weights and its box mapping).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.artifact import Manifest, load_artifact
from models.identity.align import extract_chip
from models.identity.lfw import image_path
from models.identity.pipeline import FacePipeline, chip_array, run_batched
from models.onnx_backend import Runtime

Progress = Callable[[str], None]
CHUNK = 256  # images per detector call and per descriptor batch


def load_rgb(root: Path, key: str) -> np.ndarray:
    with Image.open(image_path(root, key)) as image:
        return np.asarray(image.convert("RGB"))


def keys_digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:10]


def _cached(path: Path, build: Callable[[], Any]) -> Any:
    if path.is_file():
        return json.loads(path.read_text())
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def detector_boxes(detector_folder: Path, root: Path, keys: list[str], cache: Path, log: Progress) -> dict[str, list]:
    """Our detector's boxes for every image at the artifact's default operating point, on OpenVINO (float32).

    The artifact is exported to ONNX in a copy under ``cache`` when it has no ``model.onnx``; the ONNX
    detector is the same network (the repository's parity tests hold it to torch's boxes). An imported
    ONNX-only architecture (the RFB) runs as it ships, its tiling and coarse pass included.
    """
    from models.detector.onnx_predictor import OnnxFaceDetector
    from models.detector.rfb_predictor import RfbFaceDetector, ships_as_onnx
    from models.detector.types import ONNX_FILE, TILE_ABOVE, WEIGHTS_FILE, DetectRequest

    manifest = load_artifact(detector_folder)
    onnx_only = ships_as_onnx(manifest)
    digest = manifest.file(ONNX_FILE if onnx_only else WEIGHTS_FILE).sha256[:12]

    def build() -> dict[str, list]:
        folder = detector_folder
        if not onnx_only and not any(entry.path == ONNX_FILE for entry in manifest.files):
            folder = cache / f"detector-{digest}"
            if not (folder / ONNX_FILE).is_file():
                from models.onnx_export import export_artifact

                shutil.rmtree(folder, ignore_errors=True)
                shutil.copytree(detector_folder, folder)
                export_artifact(folder)
        exported, runtime = load_artifact(folder), Runtime("openvino", precision="f32")
        detector = (
            RfbFaceDetector.from_artifact(folder, exported, "cpu", runtime)
            if onnx_only
            else OnnxFaceDetector.from_artifact(folder, exported, "cpu", runtime)
        )
        d, size = manifest.defaults, manifest.input.size if manifest.input else 640
        tiling = {"tile": d.get("tile", "off"), "tile_above": float(d.get("tile_above", TILE_ABOVE))}
        found: dict[str, list] = {}
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            images = [Image.open(image_path(root, key)).convert("RGB") for key in chunk]
            requests = [
                DetectRequest(i, d["conf"], d["iou"], d["max_det"], size, d.get("min_size", 0.0), **tiling)
                for i in images
            ]
            for key, detections in zip(chunk, detector.predict(requests), strict=True):
                found[key] = [[*det.box, det.score] for det in detections]
            log(f"detector: {start + len(chunk)}/{len(keys)}")
        return found

    return _cached(cache / f"detections-{manifest.name}-{manifest.version}-{digest}-{keys_digest(keys)}.json", build)


def hog_boxes(root: Path, keys: list[str], cache: Path, log: Progress) -> dict[str, list]:
    """dlib's HOG detector's rectangles (left, top, right, bottom), upsampling once, as dlib's pipeline does."""

    def build() -> dict[str, list]:
        import dlib  # measurement only (the dev extra); never a serving dependency

        detector = dlib.get_frontal_face_detector()
        found: dict[str, list] = {}
        for index, key in enumerate(keys):
            found[key] = [[r.left(), r.top(), r.right(), r.bottom()] for r in detector(load_rgb(root, key), 1)]
            if index % 500 == 0:
                log(f"hog: {index}/{len(keys)}")
        return found

    return _cached(cache / f"hog-{keys_digest(keys)}.json", build)


def central_box(boxes: list[list[float]], shape: tuple[int, ...]) -> list[float] | None:
    """The box whose centre is nearest the image centre (LFW centres the named person), or None."""
    if not boxes:
        return None
    centre = np.array([shape[1] / 2, shape[0] / 2])
    return min(boxes, key=lambda b: float(np.hypot(*(np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]) - centre))))


def descriptors(
    folder: Path, manifest: Manifest, root: Path, boxes: dict[str, list], cache: Path, log: Progress
) -> dict[str, np.ndarray]:
    """Per image key (sorted): ``found`` flag, ``landmarks`` (5, 2), ``raw`` and ``mirrored`` (128,) descriptors.

    The ResNet runs on OpenVINO in float32 (the ONNX export of the artifact; within 1e-4 of torch).
    """
    from models.identity.onnx_predictor import OnnxFaceEmbedder

    mapping = json.dumps(manifest.hyperparameters.get("box_mapping"), sort_keys=True)
    weights = manifest.file("resnet.safetensors").sha256
    key = hashlib.sha256(f"{weights}{mapping}{keys_digest(sorted(boxes))}".encode()).hexdigest()[:12]
    path = cache / f"descriptors-{key}.npz"
    if path.is_file():
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    embedder = OnnxFaceEmbedder.from_artifact(folder, manifest, "cpu", Runtime("openvino", precision="f32"))
    pipeline: FacePipeline = embedder.pipeline
    keys = sorted(boxes)
    found = np.zeros(len(keys), bool)
    points = np.zeros((len(keys), 5, 2), np.float32)
    raw = np.zeros((len(keys), 128), np.float32)
    mirrored = np.zeros((len(keys), 128), np.float32)
    for start in range(0, len(keys), CHUNK):
        rows, chips = [], []
        for index in range(start, min(start + CHUNK, len(keys))):
            image = load_rgb(root, keys[index])
            box = central_box(boxes[keys[index]], image.shape)
            if box is None:
                continue
            found[index] = True
            points[index] = pipeline.points(image, np.array([box[:4]]))[0]
            rows.append(index)
            chips.append(extract_chip(image, points[index]))
        if chips:
            array = chip_array(chips)
            raw[rows] = run_batched(array, embedder.forward)
            mirrored[rows] = run_batched(np.ascontiguousarray(array[..., ::-1]), embedder.forward)
        log(f"descriptors: {min(start + CHUNK, len(keys))}/{len(keys)}")
    result = {"keys": np.array(keys), "found": found, "landmarks": points, "raw": raw, "mirrored": mirrored}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)  # type: ignore[arg-type]
    return result
