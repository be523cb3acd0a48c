"""The untrained starter detector artifact."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from safetensors import safe_open

from models.artifact import Manifest, load_artifact
from models.detector.predictor import WEIGHTS_FILE, DetectRequest, FaceDetector
from models.detector.starter import make_untrained_detector


def test_untrained_detector_round_trips_through_load_artifact(
    starter_detector_artifact: tuple[Path, Manifest],
) -> None:
    folder, manifest = starter_detector_artifact
    loaded = load_artifact(folder)
    assert loaded == manifest
    assert (loaded.task, loaded.architecture, loaded.labels) == ("detect", "yolov5s", ["face"])
    assert loaded.hyperparameters == {"cfg": "yolov5s.yaml", "nc": 1, "stride": 32}
    assert loaded.input is not None and loaded.input.size == 640
    assert loaded.defaults == {"conf": 0.25, "iou": 0.45, "max_det": 300}
    assert loaded.provenance.method == "untrained: random initialisation (seed 0)"


def test_untrained_detector_weights_are_float16_and_under_30_mb(
    starter_detector_artifact: tuple[Path, Manifest],
) -> None:
    folder, manifest = starter_detector_artifact
    assert [entry.path for entry in manifest.files] == [WEIGHTS_FILE]
    assert manifest.file(WEIGHTS_FILE).size < 30_000_000
    with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as weights:
        dtypes = {weights.get_tensor(key).dtype for key in weights.keys()}  # noqa: SIM118 (not a dict)
    assert torch.float16 in dtypes and torch.float32 not in dtypes


def test_untrained_detector_loads_as_a_face_detector_that_warms_up_and_predicts(
    starter_detector_artifact: tuple[Path, Manifest],
) -> None:
    folder, manifest = starter_detector_artifact
    detector = FaceDetector.from_artifact(folder, load_artifact(folder), torch.device("cpu"))
    assert detector.stride == manifest.hyperparameters["stride"]
    detector.warmup()
    image = Image.new("RGB", (50, 30), (90, 60, 30))
    request = DetectRequest(image=image, conf=0.0, iou=1.0, max_det=3, imgsz=64)
    assert len(detector.predict([request])[0]) == 3


def test_untrained_detector_weights_depend_only_on_the_seed(tmp_path: Path) -> None:
    rng_before = torch.get_rng_state()
    first, again, other = (make_untrained_detector(tmp_path / str(i), seed=s) for i, s in enumerate((7, 7, 8)))
    assert first.file(WEIGHTS_FILE).sha256 == again.file(WEIGHTS_FILE).sha256
    assert first.file(WEIGHTS_FILE).sha256 != other.file(WEIGHTS_FILE).sha256
    assert torch.equal(torch.get_rng_state(), rng_before), "the starter must not move the caller's RNG"
