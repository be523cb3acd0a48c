"""The baseline peer answers /detect with whichever detector architecture the store's manifest names."""

from __future__ import annotations

import json
from pathlib import Path

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
