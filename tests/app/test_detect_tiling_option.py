"""The ``tile`` option of /detect and /classify, and the engine an ONNX-only detector runs on."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.manager import SlotPlan
from app.model_plans import network_plan
from app.settings import EMBEDDED_STORE, Settings
from models.artifact import load_artifact
from tests.support.fakes import FakeClassifier, FakeDetector, fake_plans, make_fake_store
from tests.support.images import encode, face_like_photo

PHOTO = {"image": ("p.png", face_like_photo(320, 240, "PNG"), "image/png")}  # PNG: decoded whole (no DCT scales)


class RecordingClassifier(FakeClassifier):
    def __init__(self, manifest: Any) -> None:
        super().__init__(manifest, 0.0)
        self.crops: list[Image.Image] = []

    def predict(self, batch: list[Image.Image]) -> list[Any]:
        self.crops.extend(batch)
        return super().predict(batch)


class RecordingDetector(FakeDetector):
    def __init__(self, manifest: Any) -> None:
        super().__init__(manifest, 0.0)
        self.requests: list[Any] = []

    def predict(self, batch: list[Any]) -> list[Any]:
        self.requests.extend(batch)
        return super().predict(batch)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, list[RecordingDetector]]]:
    built: list[RecordingDetector] = []

    def build(folder: Path, manifest: Any, device: str) -> RecordingDetector:
        built.append(RecordingDetector(manifest))
        return built[-1]

    def classifier(folder: Path, manifest: Any, device: str) -> RecordingClassifier:
        classifiers.append(RecordingClassifier(manifest))
        return classifiers[-1]

    classifiers: list[RecordingClassifier] = []
    plans = [SlotPlan("detector", "detector", build), SlotPlan("classifier", "classifier", classifier)]
    plans += fake_plans()[2:]
    settings = Settings(store=make_fake_store(tmp_path / "store").as_uri(), cache_dir=tmp_path / "cache")
    with TestClient(create_app(settings, plans)) as client:
        for _ in range(500):
            if client.get("/readyz").status_code == 200:
                break
        yield client, built


def test_tile_reaches_the_detector_and_defaults_to_the_models_choice(
    served: tuple[TestClient, list[RecordingDetector]],
) -> None:
    client, built = served
    assert client.post("/detect", files=PHOTO, data={"tile": "on"}).status_code == 200
    assert client.post("/detect", files=PHOTO).status_code == 200
    assert client.post("/classify", files=PHOTO, data={"tile": "off"}).status_code == 200
    tiles = [request.tile for request in built[-1].requests[-3:]]
    assert tiles == ["on", "off", "off"]  # the fake artifact's manifest sets no tiling: off


def test_a_large_jpeg_decodes_smaller_where_the_views_lose_nothing_and_answers_in_its_own_pixels(
    served: tuple[TestClient, list[RecordingDetector]],
) -> None:
    client, built = served
    jpeg = {"image": ("p.jpg", face_like_photo(320, 240), "image/jpeg")}
    answers = [client.post("/detect", files=photo, data={"min_size": "60"}).json() for photo in (jpeg, PHOTO)]
    seen = [request.image.size for request in built[-1].requests[-2:]]
    # the fake network's input is 64 px: the views keep 120 px at half scale (60 at a quarter: too few); the
    # JPEG decodes at its DCT's half scale, the PNG decodes whole and is averaged down
    assert seen == [(160, 120), (160, 120)]
    assert answers[0] == answers[1]  # the same boxes, min_size and size, in the photo's own pixels
    assert answers[0]["image"] == {"width": 320, "height": 240}
    assert answers[0]["detections"][0]["box"] == [80.0, 60.0, 160.0, 120.0]


def test_classify_detects_on_the_photo_averaged_down_and_crops_the_faces_from_the_whole_photo(
    served: tuple[TestClient, list[RecordingDetector]],
) -> None:
    client, built = served
    jpeg = {"image": ("p.jpg", face_like_photo(320, 240), "image/jpeg")}
    answer = client.post("/classify", files=jpeg).json()
    assert built[-1].requests[-1].image.size == (160, 120)  # what /detect's views see, lossless for them
    [face] = answer["faces"]
    assert face["box"] == [80.0, 60.0, 160.0, 120.0]  # the fake's box, in the photo's pixels
    classifier = client.app.state.manager.slot("classifier").predictor  # type: ignore[attr-defined]
    assert classifier.crops[-1].size == (96, 72)  # the box and its 0.1 margin, cut from the whole photo


def test_a_rotated_jpeg_answers_in_its_upright_pixels(served: tuple[TestClient, list[RecordingDetector]]) -> None:
    client, built = served
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: the 320×240 file is a 240×320 photo
    upright = Image.open(io.BytesIO(face_like_photo(320, 240)))
    rotated = {"image": ("p.jpg", encode(upright, "JPEG", exif=exif.tobytes()), "image/jpeg")}
    answer = client.post("/detect", files=rotated).json()
    assert built[-1].requests[-1].image.size == (120, 160)  # decoded at half scale, then turned upright
    assert answer["image"] == {"width": 240, "height": 320}
    assert answer["detections"][0]["box"] == [60.0, 80.0, 120.0, 160.0]  # the fake's box, in upright pixels


def test_an_unknown_tile_mode_is_a_422_with_a_detail(served: tuple[TestClient, list[RecordingDetector]]) -> None:
    client, _ = served
    response = client.post("/detect", files=PHOTO, data={"tile": "sideways"})
    assert response.status_code == 422 and "detail" in response.json()


def test_an_onnx_only_detector_never_runs_on_torch_and_the_plan_says_why() -> None:
    rfb = load_artifact(EMBEDDED_STORE / "face-detector" / "v4")
    yolo = load_artifact(EMBEDDED_STORE / "face-detector" / "v3")
    choose = network_plan("detector", Settings(detector_backend="torch")).engine
    assert choose is not None
    choice = choose(rfb)
    assert choice.engine in {"openvino", "onnxruntime"}
    assert choice.reason.startswith("DEEPCANVAS_DETECTOR_BACKEND=torch, but ultralight-rfb ships only as ONNX")
    assert choose(yolo).engine == "torch"  # a YOLO artifact keeps the backend it was given
