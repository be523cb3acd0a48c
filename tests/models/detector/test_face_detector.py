"""FaceDetector: batching, per-request thresholds and boxes mapped back to each original image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from models.artifact import ArtifactError, Manifest, Provenance
from models.detector.predictor import DetectRequest, FaceDetector

WIDE, TALL, SQUARE = (400, 150), (90, 300), (100, 100)
DRAWN = {WIDE: (37, 20, 301, 111), TALL: (10, 51, 77, 260), SQUARE: (13, 40, 61, 93)}


class BrightRegionNetwork(torch.nn.Module):
    """Stands in for YOLO with a known answer: per image, a confident anchor (0.9) boxing the bright
    pixels of the letterboxed input and a dim anchor (0.1) covering the whole canvas."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("stride", torch.tensor([8.0, 16.0, 32.0]))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        height, width = float(images.shape[-2]), float(images.shape[-1])
        anchors = []
        for gray in images.mean(dim=1):  # (H, W) each
            ys, xs = torch.nonzero(gray > 0.5, as_tuple=True)
            x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1
            bright = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.9]
            anchors.append(torch.tensor([bright, [width / 2, height / 2, width, height, 0.1]]).T)  # (5, 2)
        return torch.stack(anchors), {}  # (B, 5, 2), like the Detect head's (decoded, raw) pair


@pytest.fixture
def known_answer_detector() -> FaceDetector:
    manifest = Manifest(
        name="bright-region",
        version="v0",
        task="detect",
        architecture="test stub",
        labels=["face"],
        files=[],
        provenance=Provenance(method="test stub"),
    )
    return FaceDetector(BrightRegionNetwork(), manifest, torch.device("cpu"))


@pytest.fixture(scope="module")
def untrained_detector(starter_detector_artifact: tuple[Path, Manifest]) -> FaceDetector:
    return FaceDetector.from_artifact(*starter_detector_artifact, torch.device("cpu"))


def request(image: Image.Image, imgsz: int, conf: float = 0.05, iou: float = 0.45, max_det: int = 300) -> DetectRequest:
    return DetectRequest(image=image, conf=conf, iou=iou, max_det=max_det, imgsz=imgsz)


def test_predict_maps_each_box_back_to_its_own_image_across_mixed_input_sizes(
    known_answer_detector: FaceDetector, image_with_rectangle: Callable[..., Image.Image]
) -> None:
    cases = [(WIDE, 96), (TALL, 160), (SQUARE, 100), (WIDE, 160), (TALL, 64)]
    batch = [request(image_with_rectangle(*shape, DRAWN[shape]), imgsz) for shape, imgsz in cases]
    results = known_answer_detector.predict(batch)
    assert len(results) == len(cases)
    for (shape, imgsz), detections in zip(cases, results, strict=True):
        best = detections[0]
        assert best.label == "face" and best.score == pytest.approx(0.9)
        # One pixel of the network input is max(shape) / input_size original pixels.
        tolerance = max(1.0, max(shape) / known_answer_detector.input_size(imgsz))
        assert best.box == pytest.approx(DRAWN[shape], abs=tolerance)
        assert detections[1].box == pytest.approx((0, 0, *shape))


def test_predict_applies_each_requests_own_thresholds_within_one_batch(
    known_answer_detector: FaceDetector, image_with_rectangle: Callable[..., Image.Image]
) -> None:
    image = image_with_rectangle(*SQUARE, DRAWN[SQUARE])
    batch = [
        request(image, 64, conf=0.05),
        request(image, 64, conf=0.5),
        request(image, 64, conf=0.05, max_det=1),
        request(image, 64, conf=0.95),
    ]
    assert [len(d) for d in known_answer_detector.predict(batch)] == [2, 1, 1, 0]


def test_predict_of_an_empty_batch_is_empty(known_answer_detector: FaceDetector) -> None:
    assert known_answer_detector.predict([]) == []


def test_input_size_rounds_imgsz_up_to_a_multiple_of_the_stride(untrained_detector: FaceDetector) -> None:
    assert untrained_detector.stride == 32
    sizes = {imgsz: untrained_detector.input_size(imgsz) for imgsz in (1, 32, 64, 100, 160, 641)}
    assert sizes == {1: 32, 32: 32, 64: 64, 100: 128, 160: 160, 641: 672}


def test_untrained_yolov5s_answers_each_request_in_order_with_boxes_inside_its_image(
    untrained_detector: FaceDetector,
) -> None:
    images = [Image.effect_noise(shape, 50).convert("RGB") for shape in [(300, 50), (40, 200), (123, 77), (16, 16)]]
    # conf 0 and IoU 1 keep every anchor, so each request's own max_det fixes its number of boxes.
    batch = [
        request(image, imgsz, conf=0.0, iou=1.0, max_det=i + 2)
        for i, (image, imgsz) in enumerate(zip(images, (64, 160, 100, 64), strict=True))
    ]
    results = untrained_detector.predict(batch)
    assert [len(d) for d in results] == [2, 3, 4, 5]
    for image, detections in zip(images, results, strict=True):
        width, height = image.size
        for detection in detections:
            x1, y1, x2, y2 = detection.box
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert 0 <= detection.score <= 1 and detection.label == "face"


@pytest.mark.parametrize(
    "update",
    [
        {"task": "classify"},
        {"labels": []},
        {"hyperparameters": {"cfg": "https://example.com/yolov5s.yaml", "nc": 1}},
        {"hyperparameters": {"cfg": "no-such-model.yaml", "nc": 1}},
        {"hyperparameters": {"cfg": "yolov5s.yaml", "nc": 1}, "labels": ["face", "person"]},
        {"hyperparameters": {"cfg": "yolov5s.yaml", "nc": 2}, "labels": ["face", "person"]},
    ],
    ids=[
        "wrong-task",
        "no-labels",
        "url-config",
        "unknown-config",
        "nc-disagrees-with-labels",
        "weights-for-another-nc",
    ],
)
def test_from_artifact_refuses_a_manifest_that_does_not_describe_its_weights(
    starter_detector_artifact: tuple[Path, Manifest], update: dict[str, object]
) -> None:
    folder, manifest = starter_detector_artifact
    with pytest.raises(ArtifactError):
        FaceDetector.from_artifact(folder, manifest.model_copy(update=update), torch.device("cpu"))
