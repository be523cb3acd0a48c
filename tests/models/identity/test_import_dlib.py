"""``deepcanvas models import-dlib`` reproduces the committed face-embedder artifact's weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.artifact import load_artifact
from models.identity.importer import import_dlib
from models.identity.types import LANDMARKS_FILE, LICENSE_FILE, RESNET_FILE

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_import_writes_the_committed_weights_with_licence_and_sources(
    shared_dir: Path, embedded_store: Path, tmp_path: Path
) -> None:
    source = shared_dir / "data" / "weights" / "dlib-face-recognition"
    out = tmp_path / "face-embedder"
    manifest = import_dlib(
        source / "dlib_face_recognition_resnet_model_v1.dat",
        source / "shape_predictor_5_face_landmarks.dat",
        source / "LICENSE",
        out,
    )
    assert load_artifact(out) == manifest and (manifest.task, manifest.name) == ("embed", "face-embedder")
    committed = load_artifact(embedded_store / "face-embedder" / "v1")
    for path in (RESNET_FILE, LANDMARKS_FILE, LICENSE_FILE):  # a deterministic conversion
        assert manifest.file(path).sha256 == committed.file(path).sha256
    sources = manifest.hyperparameters["source_sha256"]
    assert sources["resnet"] == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
    assert sources["license"] == manifest.file(LICENSE_FILE).sha256
    assert manifest.input is not None and manifest.input.size == 150
    with pytest.raises(FileExistsError, match="not empty"):
        import_dlib(
            source / "dlib_face_recognition_resnet_model_v1.dat",
            source / "shape_predictor_5_face_landmarks.dat",
            source / "LICENSE",
            out,
        )
