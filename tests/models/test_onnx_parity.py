"""The ONNX predictors answer like the torch predictors they were exported from (untrained starter weights).

Each runs on ONNX Runtime and on OpenVINO at f32 with the same tolerances; OpenVINO at bf16 (its default on
CPUs with AMX, which this machine has) trades about three significant digits for a 3-4x faster forward pass,
and is held to tolerances of that size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.classifier.onnx_predictor import OnnxFaceClassifier
from models.classifier.predictor import FaceClassifier
from models.detector.boxes import box_iou
from models.detector.onnx_predictor import OnnxFaceDetector
from models.detector.predictor import Detection, DetectRequest, FaceDetector
from models.onnx_backend import Runtime
from models.style.onnx_predictor import OnnxStyleTransfer
from models.style.predictor import StyleTransfer, StylizeRequest
from tests.models.conftest import ExportedStore, picture

CPU = torch.device("cpu")
EXACT_RUNTIMES = [Runtime("onnxruntime"), Runtime("openvino", precision="f32")]
RUNTIME_IDS = ["onnxruntime", "openvino-f32"]
BF16 = Runtime("openvino", precision="bf16")


def assert_same_detections(ours: list[Detection], theirs: list[Detection], score_tolerance: float = 1e-3) -> None:
    """Same count, and each torch box has an ONNX twin: IoU >= 0.99, score within 1e-3, same label.

    A box clipped to zero area has no IoU; its twin must then have the same corners.
    """
    assert len(ours) == len(theirs) > 1
    unmatched = list(ours)
    for detection in theirs:
        box = np.array(detection.box)
        distances = [np.abs(np.array(d.box) - box).max() for d in unmatched]
        match = unmatched.pop(int(np.argmin(distances)))
        iou = float(box_iou(box, np.array([match.box]))[0])
        assert iou >= 0.99 or min(distances) <= 0.01, f"{match.box} is no twin of {detection.box}"
        assert abs(match.score - detection.score) <= score_tolerance and match.label == detection.label


@pytest.fixture(scope="module", params=EXACT_RUNTIMES, ids=RUNTIME_IDS)
def detectors(exported_store: ExportedStore, request: pytest.FixtureRequest) -> tuple[FaceDetector, OnnxFaceDetector]:
    folder, manifest = exported_store.folder("face-detector"), exported_store.after["face-detector"]
    onnx = OnnxFaceDetector.from_artifact(folder, manifest, "cpu", request.param)
    return FaceDetector.from_artifact(folder, manifest, CPU), onnx


def test_onnx_detector_head_output_matches_torch_for_any_batch_and_side(
    detectors: tuple[FaceDetector, OnnxFaceDetector],
) -> None:
    torch_detector, onnx_detector = detectors
    images = np.random.default_rng(0).random((3, 3, 96, 160), dtype=np.float32)  # sides unlike the export's
    with torch.inference_mode():
        expected = torch_detector.forward(images)
    got = onnx_detector.forward(images)
    assert got.shape == expected.shape == (3, 5, (12 * 20 + 6 * 10 + 3 * 5))
    np.testing.assert_allclose(got, expected, atol=1e-3 * (1 + np.abs(expected).max()))


def test_onnx_detector_finds_the_same_boxes_and_scores_as_torch(
    detectors: tuple[FaceDetector, OnnxFaceDetector],
) -> None:
    torch_detector, onnx_detector = detectors
    # (image size, imgsz, seed): pictures whose top scores are clear of ties, so NMS has one right answer.
    cases = [((200, 120), 128, 0), ((128, 128), 128, 2), ((160, 96), 96, 4), ((250, 250), 96, 7), ((40, 300), 64, 8)]
    # A random detector's scores are low: conf 0.001 gives it detections to compare.
    batch = [
        DetectRequest(picture(size, seed), conf=0.001, iou=0.45, max_det=8, imgsz=side) for size, side, seed in cases
    ]
    theirs_all = torch_detector.predict(batch)
    for ours, theirs in zip(onnx_detector.predict(batch), theirs_all, strict=True):
        scores = [d.score for d in theirs]
        assert min(np.abs(np.diff(scores))) > 1e-5, "a near-tie: pick another picture"
        assert_same_detections(ours, theirs)


@pytest.mark.parametrize("runtime", EXACT_RUNTIMES, ids=RUNTIME_IDS)
def test_onnx_classifier_gives_torchs_probabilities_for_a_batch_of_crops(
    exported_store: ExportedStore, runtime: Runtime
) -> None:
    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    crops = [picture((20 + 13 * i, 90 - 7 * i), i) for i in range(8)]
    ours = OnnxFaceClassifier.from_artifact(folder, manifest, "cpu", runtime).predict(crops)
    theirs = FaceClassifier.from_artifact(folder, manifest, CPU).predict(crops)
    assert [r.label for r in ours] == [r.label for r in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.probabilities == pytest.approx(reference.probabilities, abs=1e-4)


@pytest.mark.parametrize("runtime", EXACT_RUNTIMES, ids=RUNTIME_IDS)
@pytest.mark.parametrize(
    ("styles", "weights", "alpha", "preserve_color"),
    [((1,), (1.0,), 1.0, False), ((1, 2), (0.7, 0.3), 0.6, False), ((2,), (1.0,), 1.0, True)],
    ids=["one-style", "two-styles-half-strength", "preserve-color"],
)
def test_onnx_style_transfer_paints_within_a_grey_level_of_torch(
    exported_store: ExportedStore,
    runtime: Runtime,
    styles: tuple[int, ...],
    weights: tuple[float, ...],
    alpha: float,
    preserve_color: bool,
) -> None:
    folder, manifest = exported_store.folder("adain"), exported_store.after["adain"]
    style_images = {1: picture((64, 48), 11), 2: picture((40, 72), 12)}
    request = StylizeRequest(
        picture((120, 80), 10), tuple(style_images[s] for s in styles), weights, alpha, preserve_color, max_side=96
    )
    [ours] = OnnxStyleTransfer.from_artifact(folder, manifest, "cpu", runtime).predict([request])
    [theirs] = StyleTransfer.from_artifact(folder, manifest, CPU).predict([request])
    assert ours.size == theirs.size == (96, 64)
    difference = np.abs(np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64))
    assert difference.mean() < 1.0  # grey levels out of 255


def test_openvino_bf16_keeps_boxes_probabilities_and_paintings_close_to_torch(exported_store: ExportedStore) -> None:
    folder, manifest = exported_store.folder("face-detector"), exported_store.after["face-detector"]
    request = DetectRequest(picture((128, 128), 2), conf=0.001, iou=0.45, max_det=8, imgsz=128)
    [theirs] = FaceDetector.from_artifact(folder, manifest, CPU).predict([request])
    [ours] = OnnxFaceDetector.from_artifact(folder, manifest, "cpu", BF16).predict([request])
    assert_same_detections(ours[:3], theirs[:3], score_tolerance=5e-3)

    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    crops = [picture((20 + 13 * i, 90 - 7 * i), i) for i in range(8)]
    classified = OnnxFaceClassifier.from_artifact(folder, manifest, "cpu", BF16).predict(crops)
    references = FaceClassifier.from_artifact(folder, manifest, CPU).predict(crops)
    for mine, reference in zip(classified, references, strict=True):
        assert mine.probabilities == pytest.approx(reference.probabilities, abs=1e-2)

    folder, manifest = exported_store.folder("adain"), exported_store.after["adain"]
    paint = StylizeRequest(picture((120, 80), 10), (picture((64, 48), 11),), (1.0,), 1.0, False, max_side=96)
    [painted] = OnnxStyleTransfer.from_artifact(folder, manifest, "cpu", BF16).predict([paint])
    [reference_painting] = StyleTransfer.from_artifact(folder, manifest, CPU).predict([paint])
    difference = np.abs(np.asarray(painted, dtype=np.float64) - np.asarray(reference_painting, dtype=np.float64))
    assert difference.mean() < 5.0  # grey levels out of 255; bf16 keeps about 3 significant digits


def test_onnx_classifier_with_flip_tta_gives_torchs_probabilities(exported_store: ExportedStore) -> None:
    folder, manifest = exported_store.folder("face-gender"), exported_store.after["face-gender"]
    flipped = manifest.model_copy(update={"hyperparameters": manifest.hyperparameters | {"flip_tta": True}})
    crops = [picture((20 + 13 * i, 90 - 7 * i), i) for i in range(5)]
    ours = OnnxFaceClassifier.from_artifact(folder, flipped, "cpu", EXACT_RUNTIMES[0]).predict(crops)
    theirs = FaceClassifier.from_artifact(folder, flipped, CPU).predict(crops)
    plain = FaceClassifier.from_artifact(folder, manifest, CPU).predict(crops)
    assert any(
        abs(t.probabilities["male"] - p.probabilities["male"]) > 1e-4 for t, p in zip(theirs, plain, strict=True)
    )
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.probabilities == pytest.approx(reference.probabilities, abs=1e-4)
