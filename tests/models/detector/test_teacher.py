"""The teacher detector's decoding, tiling and merging, on a fake ONNX session (no weights needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.detector.teacher import FaceTeacher, TeacherDetections, merge, tiles

RFB_640 = Path(__file__).resolve().parents[3].parent / "shared/data/weights/ultralight-face-rfb/version-RFB-640.onnx"


class FakeSession:
    """Two anchors: a sure face at the top-left quarter and a weak one below the floor."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.inputs.append(feeds["input"])
        scores = np.array([[[0.05, 0.95], [0.9, 0.1]]], dtype=np.float32)  # (1, 2, 2)
        boxes = np.array([[[0.0, 0.0, 0.25, 0.5], [0.5, 0.5, 1.0, 1.0]]], dtype=np.float32)  # (1, 2, 4)
        return [scores, boxes]


def test_the_teacher_normalises_its_input_and_returns_boxes_in_photo_pixels() -> None:
    session = FakeSession()
    teacher = FaceTeacher(session, width=64, height=48, name="fake")
    found = teacher.detect(Image.new("RGB", (80, 60), (127, 127, 127)))
    assert session.inputs[0].shape == (1, 3, 48, 64) and np.allclose(session.inputs[0], 0)
    np.testing.assert_allclose(found.boxes, [[0, 0, 20, 30]])
    np.testing.assert_allclose(found.scores, [0.95])


def test_a_large_photo_is_also_read_as_overlapping_tiles_that_cover_it() -> None:
    assert tiles(640, 480, 640) == []
    parts = tiles(1600, 900, 640)
    assert len(parts) == 2  # 1600 px: two columns of tiles; 900 px: one row
    assert min(p[0] for p in parts) == 0 and max(p[2] for p in parts) == 1600
    assert min(p[1] for p in parts) == 0 and max(p[3] for p in parts) == 900


def test_merging_passes_keeps_the_best_of_overlapping_boxes() -> None:
    first = TeacherDetections(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([0.7]))
    second = TeacherDetections(np.array([[1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]]), np.array([0.9, 0.8]))
    merged = merge([first, second])
    np.testing.assert_allclose(merged.scores, [0.9, 0.8])


@pytest.mark.skipif(not RFB_640.is_file(), reason="../shared (the teacher's weights) is absent")
def test_the_shared_teacher_finds_a_face_in_a_shared_portrait() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    teacher = FaceTeacher.from_onnx(RFB_640)
    with Image.open(RFB_640.parents[2] / "style-transfer" / "content" / "brad_pitt.jpg") as photo:
        found = teacher.detect(photo.convert("RGB"))
    assert (found.scores >= 0.8).sum() == 1
