"""The baseline peer answers /detect with whichever detector architecture the store's manifest names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.baseline_app import create_baseline
from models.artifact import load_artifact


@pytest.mark.shared
def test_the_baseline_detects_the_portraits_face_with_the_embedded_stable_detector(
    embedded_store: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPCANVAS_STORE", embedded_store.as_uri())
    version = json.loads((embedded_store / "face-detector" / "aliases.json").read_text())["stable"]
    stable = load_artifact(embedded_store / "face-detector" / version)  # the imported RFB: no ultralytics YOLO
    assert stable.architecture == "ultralight-rfb"
    photo = (shared_dir / "data/style-transfer/content/brad_pitt.jpg").read_bytes()
    with TestClient(create_baseline()) as client:
        response = client.post("/detect", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    [face] = response.json()["detections"]
    assert face["score"] > 0.9 and 150 < (face["box"][0] + face["box"][2]) / 2 < 350


@pytest.mark.shared
def test_pointed_at_the_yolo_detector_the_baseline_is_the_naive_ultralytics_app(
    embedded_store: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what `deepcanvas bench --baseline-detector face-detector:v3` puts in the naive app's environment
    monkeypatch.setenv("DEEPCANVAS_STORE", embedded_store.as_uri())
    monkeypatch.setenv("DEEPCANVAS_DETECTOR", "face-detector:v3")
    assert load_artifact(embedded_store / "face-detector" / "v3").architecture == "yolov5s"
    from ultralytics import YOLO

    calls: list[int] = []
    predict = YOLO.predict

    def counted(self: YOLO, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(YOLO, "predict", counted)
    photo = (shared_dir / "data/style-transfer/content/brad_pitt.jpg").read_bytes()
    with TestClient(create_baseline()) as client:
        response = client.post("/detect", files={"image": ("p.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert calls == [1]
    faces = response.json()["detections"]
    assert faces and max(face["score"] for face in faces) > 0.5
