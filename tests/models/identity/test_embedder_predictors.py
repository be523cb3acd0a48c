"""The committed face-embedder artifact through both predictors, on real LFW faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.artifact import load_artifact
from models.identity.onnx_predictor import OnnxFaceEmbedder
from models.identity.predictor import FaceEmbedder
from models.identity.types import EmbedRequest, FaceEmbedding
from models.onnx_backend import Runtime

pytestmark = [pytest.mark.shared, pytest.mark.slow]
# LFW's deep-funneled photos are 250 px with the named face centred: this box holds it
CENTRE_BOX = (75.0, 70.0, 175.0, 185.0)
PHOTOS = ("Colin_Powell_0040", "Colin_Powell_0049", "Colin_Powell_0071", "Serena_Williams_0001", "Yao_Ming_0002")


@pytest.fixture(scope="module")
def artifact(embedded_store: Path) -> Path:
    return embedded_store / "face-embedder" / "v1"


@pytest.fixture(scope="module")
def photos(shared_dir: Path) -> dict[str, np.ndarray]:
    root = shared_dir / "data" / "lfw-funneled" / "images"
    return {key: np.asarray(Image.open(root / key.rsplit("_", 1)[0] / f"{key}.jpg").convert("RGB")) for key in PHOTOS}


@pytest.fixture(scope="module")
def torch_results(artifact: Path, photos: dict[str, np.ndarray]) -> list[FaceEmbedding]:
    embedder = FaceEmbedder.from_artifact(artifact, load_artifact(artifact), "cpu")
    return embedder.predict([EmbedRequest(image, CENTRE_BOX) for image in photos.values()])


def test_descriptors_are_unit_length_and_separate_people(torch_results: list[FaceEmbedding]) -> None:
    vectors = np.stack([r.descriptor for r in torch_results if r.descriptor is not None])
    assert vectors.shape == (len(PHOTOS), 128) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    same = similarity[0, 1:3].min()  # Colin Powell against himself
    different = similarity[:3, 3:].max()  # against Serena Williams and Yao Ming
    assert same > 0.9 > different  # around the calibrated thresholds (dlib descriptors share a narrow cone)
    for result in torch_results:
        x, y = result.landmarks[:, 0], result.landmarks[:, 1]
        assert result.landmarks.shape == (5, 2) and result.landmarks.dtype == np.float32
        assert (x > 60).all() and (x < 190).all() and (y > 60).all() and (y < 200).all()  # on the face
        assert x[0] > x[1] > x[3] > x[2]  # dlib's order: one eye's outer and inner corner, the other's, then nose
        assert y[4] > y[:4].max()  # the nose below the eyes


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_the_onnx_predictor_matches_torch(
    engine: str, artifact: Path, photos: dict[str, np.ndarray], torch_results: list[FaceEmbedding]
) -> None:
    embedder = OnnxFaceEmbedder.from_artifact(artifact, load_artifact(artifact), "cpu", Runtime(engine))
    results = embedder.predict([EmbedRequest(image, CENTRE_BOX) for image in photos.values()])
    for ours, reference in zip(results, torch_results, strict=True):
        assert ours.descriptor is not None and reference.descriptor is not None
        np.testing.assert_array_equal(ours.landmarks, reference.landmarks)  # the same numpy pipeline
        # onnxruntime is float32 like torch; OpenVINO may run in bf16 on CPUs that have it
        tolerance = 1e-4 if engine == "onnxruntime" else 2e-2
        assert np.abs(ours.descriptor - reference.descriptor).max() <= tolerance


def test_landmarks_only_requests_and_order_are_kept(artifact: Path, photos: dict[str, np.ndarray]) -> None:
    embedder = OnnxFaceEmbedder.from_artifact(artifact, load_artifact(artifact))
    images = list(photos.values())
    batch = [EmbedRequest(images[3], CENTRE_BOX, descriptor=False), EmbedRequest(images[0], CENTRE_BOX)]
    batch.append(EmbedRequest(images[3], CENTRE_BOX))
    first, second, third = embedder.predict(batch)
    alone = embedder.predict([EmbedRequest(images[0], CENTRE_BOX)])[0]
    assert first.descriptor is None and third.descriptor is not None and second.descriptor is not None
    np.testing.assert_array_equal(first.landmarks, third.landmarks)
    np.testing.assert_allclose(second.descriptor, alone.descriptor, atol=1e-5)
    assert embedder.predict([]) == []


def test_bad_requests_are_refused_with_a_reason(artifact: Path, photos: dict[str, np.ndarray]) -> None:
    embedder = OnnxFaceEmbedder.from_artifact(artifact, load_artifact(artifact))
    image = next(iter(photos.values()))
    with pytest.raises(ValueError, match="x2 > x1"):
        embedder.predict([EmbedRequest(image, (100.0, 50.0, 90.0, 120.0))])
    with pytest.raises(ValueError, match="uint8 RGB"):
        embedder.predict([EmbedRequest(image.astype(np.float32), CENTRE_BOX)])
    embedder.warmup()


def test_a_face_on_a_large_photo_gives_the_same_chip(artifact: Path, photos: dict[str, np.ndarray]) -> None:
    from models.identity.align import extract_chip

    embedder = OnnxFaceEmbedder.from_artifact(artifact, load_artifact(artifact))
    image = photos["Colin_Powell_0040"]
    points = embedder.pipeline.points(image, np.array([CENTRE_BOX]))[0]
    large = np.asarray(Image.fromarray(image).resize((1000, 1000), Image.Resampling.BICUBIC))  # halved twice
    chip, large_chip = extract_chip(image, points), extract_chip(large, points * 4 + 1.5)
    assert np.abs(chip.astype(np.float32) - large_chip).mean() < 6.0
    found = embedder.predict([EmbedRequest(image, CENTRE_BOX), EmbedRequest(large, tuple(4 * v for v in CENTRE_BOX))])
    assert found[0].descriptor is not None and found[1].descriptor is not None
    assert float(found[0].descriptor @ found[1].descriptor) > 0.95
