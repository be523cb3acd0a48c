"""Our readers of dlib's files against dlib itself (the ``dlib-bin`` wheel, a test-only oracle) on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.identity.align import extract_chip
from models.identity.dlib_format import DlibFormatError, read_resnet, read_shape_predictor
from models.identity.landmarks import ShapePredictor
from models.identity.network import resnet_from_dlib

dlib = pytest.importorskip("dlib", reason="dlib-bin (the dev extra) is the oracle")
pytestmark = [pytest.mark.shared, pytest.mark.slow]
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
# a spread of LFW photos: men and women, young and old, glasses, turned heads
PHOTOS = (
    "Aaron_Eckhart/Aaron_Eckhart_0001",
    "Abdullah_Gul/Abdullah_Gul_0001",
    "Colin_Powell/Colin_Powell_0040",
    "Gloria_Macapagal_Arroyo/Gloria_Macapagal_Arroyo_0003",
    "Hans_Blix/Hans_Blix_0007",
    "Jennifer_Lopez/Jennifer_Lopez_0001",
    "Nelson_Mandela/Nelson_Mandela_0001",
    "Queen_Elizabeth_II/Queen_Elizabeth_II_0003",
    "Serena_Williams/Serena_Williams_0001",
    "Yao_Ming/Yao_Ming_0002",
)


@pytest.fixture(scope="module")
def weights(shared_dir: Path) -> Path:
    return shared_dir / "data" / "weights" / "dlib-face-recognition"


@pytest.fixture(scope="module")
def faces(shared_dir: Path, weights: Path) -> list[tuple[np.ndarray, object, object]]:
    """(image, dlib's HOG rectangle, dlib's 5 points) for each photo that exists here."""
    root = shared_dir / "data" / "lfw-funneled" / "images"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(weights / LANDMARKS))
    found = []
    for key in PHOTOS:
        path = root / f"{key}.jpg"
        if path.is_file():
            image = np.asarray(Image.open(path).convert("RGB"))
            for rect in detector(image, 1)[:1]:
                found.append((image, rect, predictor(image, rect)))
    assert len(found) >= 8, "need several real faces"
    return found


def test_descriptors_match_dlib_on_the_same_chips(weights: Path, faces: list) -> None:
    network = resnet_from_dlib(read_resnet(weights / RESNET))
    oracle = dlib.face_recognition_model_v1(str(weights / RESNET))
    chips = np.stack([dlib.get_face_chip(image, shape, 150, 0.25) for image, _, shape in faces])
    expected = np.array([np.array(oracle.compute_face_descriptor(chip)) for chip in chips])
    with torch.inference_mode():
        ours = network(torch.from_numpy(chips).permute(0, 3, 1, 2).float()).numpy()
    assert np.abs(ours - expected).max() <= 1e-4
    assert np.linalg.norm(expected, axis=1).min() > 0.5  # not trivially small


def test_landmarks_match_dlib_on_the_same_rectangles(weights: Path, faces: list) -> None:
    ours = ShapePredictor(read_shape_predictor(weights / LANDMARKS))
    for image, rect, shape in faces:
        expected = np.array([(p.x, p.y) for p in shape.parts()], np.float32)  # dlib rounds to whole pixels
        got = ours.predict(image, np.array([[rect.left(), rect.top(), rect.right(), rect.bottom()]]))[0]
        assert np.abs(got - expected).max() <= 1.0


def test_chips_match_dlib_pixel_for_pixel(faces: list) -> None:
    for image, _, shape in faces:
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        expected = dlib.get_face_chip(image, shape, 150, 0.25).astype(np.int16)
        assert np.abs(extract_chip(image, points).astype(np.int16) - expected).max() <= 1


def test_the_reader_refuses_truncated_and_corrupt_files(weights: Path, tmp_path: Path) -> None:
    data = (weights / RESNET).read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DlibFormatError, match="truncated"):
        read_resnet(truncated)
    corrupt = tmp_path / "corrupt.dat"
    tag = data.index(b"affine_")  # a layer tag renamed: another network, or damage
    corrupt.write_bytes(data[:tag] + b"affinx_" + data[tag + 7 :])
    with pytest.raises(DlibFormatError, match="unknown layer tag 'affinx_'"):
        read_resnet(corrupt)
    landmarks = tmp_path / "landmarks.dat"
    landmarks.write_bytes((weights / LANDMARKS).read_bytes()[:-10])
    with pytest.raises(DlibFormatError, match="truncated"):
        read_shape_predictor(landmarks)
    with pytest.raises(DlibFormatError):
        read_resnet(weights / LANDMARKS)  # the other file is not a network
